terraform {
  required_version = ">= 1.9" # validations that compare variables need 1.9

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.60 is the first release with `kms_key_identifier` on aws_cloudwatch_event_bus.
      version = ">= 5.60, < 7.0"
    }
  }
}
