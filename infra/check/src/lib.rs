//! No code: this crate holds the tests that keep the deployment in step with the code
//! (`tests/infra`): the routes of `template.yaml`, of `local-gateway` and of `openapi.yaml` are
//! one set, and every function `template.yaml` deploys is a binary of the workspace.
