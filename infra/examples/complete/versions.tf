terraform {
  required_version = ">= 1.9" # validations that compare variables need 1.9

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 7.0"
    }
  }
}
