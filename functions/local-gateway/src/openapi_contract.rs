//! `functions/openapi.yaml` holds the rules the handlers enforce, from the same constants: every
//! limit, bound and enum of the document is compared with the code's, and every pattern with
//! the parser it describes (each Unicode scalar value in the places where one character decides).
//! A change on either side fails here. No service is needed.

use regex::Regex;
use serde_yaml_ng::Value;

fn document() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml"))
        .expect("functions/openapi.yaml");
    serde_yaml_ng::from_str(&text).expect("openapi.yaml is YAML")
}

/// `value`, with a `$ref` to this document followed (repeatedly).
fn resolved<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        let pointer = reference.strip_prefix("#/").expect("local $ref");
        value = pointer.split('/').fold(doc, |v, key| {
            v.get(key).unwrap_or_else(|| panic!("{reference}"))
        });
    }
    value
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    resolved(doc, &doc["components"]["schemas"][name])
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_mapping(), "{method} {path} is not in openapi.yaml");
    op
}

fn json_body<'a>(doc: &'a Value, op: &'a Value) -> &'a Value {
    resolved(
        doc,
        &op["requestBody"]["content"]["application/json"]["schema"],
    )
}

fn property<'a>(doc: &'a Value, object: &'a Value, name: &str) -> &'a Value {
    resolved(doc, &object["properties"][name])
}

fn query<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    operation(doc, method, path)["parameters"]
        .as_sequence()
        .expect("parameters")
        .iter()
        .map(|p| resolved(doc, p))
        .find(|p| p["name"] == name && p["in"] == "query")
        .map(|p| resolved(doc, &p["schema"]))
        .unwrap_or_else(|| panic!("{method} {path}: no query parameter {name}"))
}

fn int(v: &Value, key: &str) -> i64 {
    v[key]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer {key} in {v:?}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// The schema's `pattern`, compiled as JSON Schema means it (the whole value must match, so
/// the patterns carry their own `^...$`).
fn pattern(v: &Value) -> Regex {
    let p = v["pattern"].as_str().expect("pattern");
    assert!(p.starts_with('^') && p.ends_with('$'), "unanchored: {p}");
    Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Every Unicode scalar value.
fn every_char() -> impl Iterator<Item = char> {
    (0..=u32::from(char::MAX)).filter_map(char::from_u32)
}

/// `check` holds for every character in `template` (its `{}`): the document and the code agree.
fn for_every_char(template: &str, agree: impl Fn(&str) -> bool) {
    for c in every_char() {
        let s = template.replace("{}", c.encode_utf8(&mut [0; 4]));
        assert!(
            agree(&s),
            "document and code disagree on {s:?} ({:#x})",
            c as u32
        );
    }
}

#[test]
fn the_documents_limits_are_the_constants_of_the_code() {
    let doc = document();

    let username = schema(&doc, "Username");
    assert_eq!(
        int(username, "minLength"),
        auth_api::model::USERNAME_MIN as i64
    );
    assert_eq!(
        int(username, "maxLength"),
        auth_api::model::USERNAME_MAX as i64
    );
    assert_eq!(
        int(schema(&doc, "Email"), "maxLength"),
        auth_api::model::EMAIL_MAX as i64
    );

    let password = schema(&doc, "NewPassword");
    assert_eq!(
        int(password, "minLength"),
        security::password::MIN_PASSWORD_CHARS as i64
    );
    assert_eq!(
        int(password, "maxLength"),
        security::password::MAX_PASSWORD_CHARS as i64
    );
    let policy = &password["x-password-policy"];
    assert_eq!(
        int(policy, "min-distinct-chars"),
        security::password::MIN_DISTINCT_CHARS as i64
    );
    assert_eq!(
        int(policy, "history-depth"),
        db::users::PASSWORD_HISTORY_DEPTH
    );
    assert_eq!(
        strings(&policy["common-words"]),
        security::password::COMMON_WORDS
    );
    assert_eq!(
        property(&doc, schema(&doc, "RegisterRequest"), "password"),
        password
    );
    let change = json_body(&doc, operation(&doc, "put", "/api/users/me"));
    assert_eq!(property(&doc, change, "new_password"), password);
    assert_eq!(
        int(property(&doc, change, "current_password"), "maxLength"),
        auth_api::MAX_LOGIN_PASSWORD_CHARS as i64
    );

    let login = schema(&doc, "LoginRequest");
    assert_eq!(
        int(property(&doc, login, "username"), "maxLength"),
        auth_api::MAX_LOGIN_USERNAME_CHARS as i64
    );
    assert_eq!(
        int(property(&doc, login, "password"), "maxLength"),
        auth_api::MAX_LOGIN_PASSWORD_CHARS as i64
    );

    let upload = json_body(&doc, operation(&doc, "post", "/api/uploads"));
    assert_eq!(
        int(property(&doc, upload, "filename"), "maxLength"),
        tasks_api::MAX_FILENAME_CHARS as i64
    );
    let settings = common::Settings::from_lookup(|k| match k {
        "ENVIRONMENT" => Some("development".into()),
        "DATABASE_URL" => Some("postgres://u:p@127.0.0.1:1/none".into()),
        _ => None,
    })
    .expect("default settings");
    let size = property(&doc, upload, "size_bytes");
    assert_eq!(int(size, "minimum"), 1);
    assert_eq!(
        int(size, "maximum") as u64,
        tasks_api::Config::from_settings(&settings).max_upload_bytes
    );
    assert_eq!(
        settings.max_upload_size_mb,
        common::settings::DEFAULT_MAX_UPLOAD_SIZE_MB
    );

    for path in ["/api/tasks", "/api/history"] {
        let limit = query(&doc, "get", path, "limit");
        assert_eq!(int(limit, "minimum"), 1, "{path}");
        assert_eq!(int(limit, "maximum"), tasks_api::MAX_PAGE, "{path}");
        assert_eq!(int(limit, "default"), tasks_api::DEFAULT_PAGE, "{path}");
        let offset = query(&doc, "get", path, "offset");
        assert_eq!(int(offset, "minimum"), 0, "{path}");
        assert_eq!(int(offset, "maximum"), tasks_api::MAX_OFFSET, "{path}");
        let mut statuses: Vec<String> = db::tasks::Status::ALL
            .iter()
            .map(|s| s.as_str().to_string())
            .collect();
        statuses.push("all".into());
        assert_eq!(
            strings(&query(&doc, "get", path, "status")["enum"]),
            statuses,
            "{path}"
        );
    }
    assert_eq!(
        strings(&schema(&doc, "TaskStatus")["enum"]),
        db::tasks::Status::ALL.map(|s| s.as_str())
    );

    let limit = query(&doc, "get", "/api/users", "limit");
    assert_eq!(int(limit, "minimum"), 1);
    assert_eq!(int(limit, "maximum"), admin_api::MAX_PAGE);
    assert_eq!(int(limit, "default"), admin_api::DEFAULT_PAGE);
    let offset = query(&doc, "get", "/api/users", "offset");
    assert_eq!(int(offset, "minimum"), 0);
    assert_eq!(int(offset, "maximum"), admin_api::MAX_OFFSET);
    assert_eq!(
        strings(&query(&doc, "get", "/api/users", "status")["enum"]),
        db::users::StatusFilter::ALL.map(|s| s.as_str())
    );
    let roles = db::users::Role::ALL.map(|r| r.as_str());
    assert_eq!(
        strings(&query(&doc, "get", "/api/users", "role")["enum"]),
        roles
    );
    let create = json_body(&doc, operation(&doc, "post", "/api/admin/users"));
    assert_eq!(strings(&property(&doc, create, "role")["enum"]), roles);
    assert_eq!(
        strings(&schema(&doc, "User")["properties"]["role"]["enum"]),
        roles
    );

    let ids = property(&doc, schema(&doc, "BulkRequest"), "user_ids");
    assert_eq!(int(ids, "minItems"), 1);
    assert_eq!(int(ids, "maxItems"), admin_api::MAX_BULK_IDS as i64);
    assert_eq!(ids["uniqueItems"], Value::Bool(true));
    for action in ["approve", "block", "unblock"] {
        let op = operation(&doc, "post", &format!("/api/admin/users/bulk/{action}"));
        assert_eq!(json_body(&doc, op), schema(&doc, "BulkRequest"), "{action}");
    }
}

#[test]
fn the_username_pattern_admits_exactly_the_names_the_server_accepts() {
    let doc = document();
    let re = pattern(schema(&doc, "Username"));
    for_every_char("ab{}", |s| {
        re.is_match(s) == auth_api::model::Username::parse(s).is_ok()
    });
    for s in ["Alice_01", "a-b", "ab", " alice", "alice ", "ali ce"] {
        let within = (auth_api::model::USERNAME_MIN..=auth_api::model::USERNAME_MAX)
            .contains(&s.chars().count());
        assert_eq!(
            re.is_match(s) && within,
            auth_api::model::Username::parse(s).is_ok(),
            "{s:?}"
        );
    }
}

#[test]
fn the_email_pattern_admits_exactly_the_addresses_the_server_accepts() {
    let doc = document();
    let re = pattern(schema(&doc, "Email"));
    let agree = |s: &str| re.is_match(s) == auth_api::model::Email::parse(s).is_ok();
    for_every_char("a{}@example.com", agree);
    for_every_char("a@ex{}ample.com", agree);
    for s in [
        "alice@example.com",
        "a@b.c",
        "a@b..c",
        "a-@-.-",
        "a@.b.c",
        "a@b.c.",
        "a@bc",
        "@b.c",
        "a@b@c.d",
        "a@",
        "",
        " a@b.c",
        "a@b.c ",
        "josé@xn--caf-dma.example",
    ] {
        assert!(agree(s), "{s:?}");
    }
}

#[test]
fn the_filename_pattern_admits_exactly_the_names_the_server_accepts() {
    let doc = document();
    let filename = schema(&doc, "Filename");
    let re = pattern(filename);
    let agree = |s: &str| re.is_match(s) == tasks_api::validate_filename(s).is_ok();
    for_every_char("{}x.pcap", agree);
    for_every_char("x{}.pcap", agree);
    for ext in tasks_api::ALLOWED_EXTENSIONS {
        for name in [
            format!("trace{ext}"),
            format!("trace{}", ext.to_uppercase()),
        ] {
            assert!(re.is_match(&name), "{name}");
            assert!(agree(&name), "{name}");
        }
    }
    for s in [
        "x.pcapx",
        "x.txt",
        "x.gz",
        "x.cap.gz",
        "x.pcap.gz.bak",
        "x",
        ".pcap",
        "x.pcap ",
        " x.pcap",
        "",
    ] {
        assert!(agree(s), "{s:?}");
    }
    // The extensions, spelled in the pattern in either case, are ALLOWED_EXTENSIONS.
    let any_case = |ext: &str| -> String {
        ext.chars()
            .map(|c| match c {
                '.' => r"\.".to_string(),
                c => format!("[{c}{}]", c.to_ascii_uppercase()),
            })
            .collect()
    };
    let alternatives: Vec<String> = tasks_api::ALLOWED_EXTENSIONS
        .iter()
        .map(|e| any_case(e.strip_prefix('.').expect("extensions start with a dot")))
        .collect();
    let ending = format!(r"\.(?:{})$", alternatives.join("|"));
    let documented = filename["pattern"].as_str().unwrap();
    assert!(
        documented.ends_with(&ending),
        "{documented} should end with {ending}"
    );
}

#[test]
fn the_password_pattern_refuses_exactly_the_characters_the_policy_refuses() {
    let doc = document();
    let re = pattern(schema(&doc, "NewPassword"));
    for_every_char("{}", |s| {
        let c = s.chars().next().unwrap();
        re.is_match(s) != security::password::is_refused_char(c)
    });
}

#[test]
fn the_login_username_pattern_refuses_exactly_the_characters_login_refuses() {
    let doc = document();
    let re = pattern(property(&doc, schema(&doc, "LoginRequest"), "username"));
    for_every_char("{}", |s| {
        let c = s.chars().next().unwrap();
        re.is_match(s) != auth_api::is_refused_at_login(c)
    });
}

#[test]
fn the_id_pattern_admits_exactly_the_uuids_the_server_reads() {
    let doc = document();
    let uuid = schema(&doc, "Uuid");
    assert_eq!(uuid["format"], "uuid");
    let re = pattern(uuid);
    let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let mut samples = vec![
        id.to_string(),
        id.to_uppercase(),
        id.replace('-', ""),
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
        format!("{id}0"),
        id[1..].to_string(),
        String::new(),
    ];
    for (i, _) in id.char_indices() {
        for c in ['g', '-', '0', 'F', ' '] {
            let mut s = id.to_string();
            s.replace_range(i..i + 1, &c.to_string());
            samples.push(s);
        }
    }
    for s in samples {
        assert_eq!(
            re.is_match(&s),
            auth_api::model::parse_uuid(&s).is_some(),
            "{s:?}"
        );
        assert_eq!(
            re.is_match(&s),
            auth_api::model::parse_user_id(&s).is_ok(),
            "{s:?}"
        );
    }
    for name in ["UserId", "TaskId"] {
        let param = &doc["components"]["parameters"][name];
        assert_eq!(resolved(&doc, &param["schema"]), uuid, "{name}");
    }
    let ids = property(&doc, schema(&doc, "BulkRequest"), "user_ids");
    assert_eq!(resolved(&doc, &ids["items"]), uuid);
}
