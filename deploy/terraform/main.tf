# Lambda's durable execution status-change events, delivered to an SQS queue durable-exporter
# reads (track.status_events.queue_url = the queue_url output). Same resources as
# deploy/cloudformation/status-events.yaml.
#   terraform init && terraform apply -var exporter_role_name=durable-exporter

terraform {
  required_version = ">= 1.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

variable "exporter_role_name" {
  type        = string
  description = "The IAM role durable-exporter runs as (it gets the queue permissions)."
}

variable "message_retention_seconds" {
  type        = number
  default     = 345600
  description = "How long an event waits in the queue while no exporter reads it (4 days)."
}

resource "aws_sqs_queue" "dead_letter" {
  name                      = "durable-exporter-status-events-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "status_events" {
  name                       = "durable-exporter-status-events"
  message_retention_seconds  = var.message_retention_seconds
  visibility_timeout_seconds = 60
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = 10
  })
}

resource "aws_cloudwatch_event_rule" "status_change" {
  name           = "durable-exporter-status-events"
  description    = "Every durable execution status change, to durable-exporter's queue."
  event_bus_name = "default"
  event_pattern = jsonencode({
    source        = ["aws.lambda"]
    "detail-type" = ["Durable Execution Status Change"]
  })
}

resource "aws_cloudwatch_event_target" "queue" {
  rule      = aws_cloudwatch_event_rule.status_change.name
  target_id = "durable-exporter-queue"
  arn       = aws_sqs_queue.status_events.arn
}

resource "aws_sqs_queue_policy" "status_events" {
  queue_url = aws_sqs_queue.status_events.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EventBridgeSendsStatusEvents"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.status_events.arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.status_change.arn } }
    }]
  })
}

resource "aws_iam_role_policy" "exporter_queue_access" {
  name = "durable-exporter-status-events"
  role = var.exporter_role_name
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid = "ReadStatusEvents"
      Effect = "Allow"
      Action = [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
      ]
      Resource = aws_sqs_queue.status_events.arn
    }]
  })
}

output "queue_url" {
  description = "track.status_events.queue_url"
  value       = aws_sqs_queue.status_events.id
}

output "dead_letter_queue_url" {
  description = "Where messages refused too often end up."
  value       = aws_sqs_queue.dead_letter.id
}
