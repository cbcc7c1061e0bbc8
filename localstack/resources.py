"""Creates (or updates) the AWS resources of the local stack; run by localstack/up.

Every call is idempotent, so `up` can run any number of times. Prints shell
assignments (QUEUE_URL=..., DLQ_URL=...) for `up` to evaluate.
"""

import json
import os
import sys

import boto3

endpoint = os.environ["ENDPOINT"]
bucket = os.environ["BUCKET"]
queue_name = os.environ["QUEUE"]
dlq_name = os.environ["DLQ"]
origins = [o.strip() for o in os.environ["ORIGINS"].split(",") if o.strip()]
visibility = os.environ["VISIBILITY"]

s3 = boto3.client("s3", endpoint_url=endpoint)
sqs = boto3.client("sqs", endpoint_url=endpoint)


def log(msg):
    print(msg, file=sys.stderr)


existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
if bucket not in existing:
    s3.create_bucket(Bucket=bucket)
    log(f"  bucket {bucket} created")
s3.put_public_access_block(
    Bucket=bucket,
    PublicAccessBlockConfiguration={
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    },
)
# The browser PUTs captures straight to the presigned URL, so the UI origin needs CORS.
s3.put_bucket_cors(
    Bucket=bucket,
    CORSConfiguration={
        "CORSRules": [
            {
                "AllowedOrigins": origins,
                "AllowedMethods": ["PUT", "GET", "HEAD"],
                "AllowedHeaders": ["Content-Type", "Content-Length"],
                "ExposeHeaders": ["ETag"],
                "MaxAgeSeconds": 3000,
            }
        ]
    },
)

# DLQ retention is longer than the source queue's: a standard queue keeps the first
# enqueue time, so a message could otherwise expire on arrival in the DLQ.
dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

queue_attrs = {
    "VisibilityTimeout": visibility,
    "MessageRetentionPeriod": "345600",
    "MaximumMessageSize": "262144",
    "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
}
queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
queue_attrs["Policy"] = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
            }
        ],
    }
)
sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=queue_attrs)

s3.put_bucket_notification_configuration(
    Bucket=bucket,
    NotificationConfiguration={
        "QueueConfigurations": [
            {
                "Id": "uploads-to-analysis",
                "QueueArn": queue_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}},
            }
        ]
    },
)
log(f"  queue {queue_name} (DLQ {dlq_name} after 5 receives), notification uploads/ -> queue")

print(f"QUEUE_URL='{queue_url}'")
print(f"DLQ_URL='{dlq_url}'")
