-- Captures above MULTIPART_THRESHOLD_MB go up as S3 multipart uploads: the task keeps the
-- upload's id (what ListParts, CompleteMultipartUpload and AbortMultipartUpload name) and the
-- part size its URLs were signed with, so a resumed upload gets the same parts. NULL for a
-- single presigned PUT.
ALTER TABLE tasks
    ADD COLUMN multipart_upload_id varchar(1024),
    ADD COLUMN multipart_part_bytes bigint CHECK (multipart_part_bytes > 0),
    ADD CONSTRAINT tasks_multipart_complete
        CHECK ((multipart_upload_id IS NULL) = (multipart_part_bytes IS NULL));
