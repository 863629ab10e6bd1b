//! Durable execution ARNs.
//!
//! The real form is
//! `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]/durable-execution/EXEC_NAME/EXEC_ID`;
//! AWS's local emulator uses `<uuid>/<uuid>`. Any identifier the API accepts is accepted: an ARN is
//! malformed only when it is empty, holds whitespace or control characters, or is longer than the
//! API's limit. Function, qualifier, region and account are read when the ARN has them.

use std::fmt;

/// The API's length limit for a durable execution ARN.
pub const MAX_ARN_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("the execution ARN is empty")]
    Empty,
    #[error("the execution ARN is {0} characters long; the API allows at most {MAX_ARN_LEN}")]
    TooLong(usize),
    #[error("the execution ARN contains whitespace or a control character at byte {0}")]
    BadCharacter(usize),
}

/// A durable execution ARN, validated, with the parts of a real Lambda ARN when present.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExecutionArn {
    raw: String,
    function: Option<FunctionParts>,
}

/// What a real execution ARN says about the function it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FunctionParts {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
    pub qualifier: Option<String>,
}

impl ExecutionArn {
    pub fn parse(s: &str) -> Result<Self, ArnError> {
        if s.is_empty() {
            return Err(ArnError::Empty);
        }
        if s.len() > MAX_ARN_LEN {
            return Err(ArnError::TooLong(s.len()));
        }
        if let Some(pos) = s.find(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(ArnError::BadCharacter(pos));
        }
        Ok(ExecutionArn {
            raw: s.to_owned(),
            function: FunctionParts::from_execution_arn(s),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn function(&self) -> Option<&FunctionParts> {
        self.function.as_ref()
    }

    /// The execution's name: `EXEC_NAME` of `.../durable-execution/EXEC_NAME/EXEC_ID`.
    pub fn execution_name(&self) -> Option<&str> {
        execution_name(&self.raw)
    }
}

/// `EXEC_NAME` of `.../durable-execution/EXEC_NAME/EXEC_ID`, when the ARN has that form.
pub fn execution_name(arn: &str) -> Option<&str> {
    let (_, rest) = arn.split_once("/durable-execution/")?;
    let (name, id) = rest.split_once('/')?;
    (!name.is_empty() && !id.is_empty()).then_some(name)
}

impl fmt::Display for ExecutionArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FunctionParts {
    /// Reads `arn:P:lambda:R:A:function:NAME[:Q]` from the front of an execution ARN (or a
    /// function ARN); `None` when the string does not have that form.
    pub fn from_execution_arn(s: &str) -> Option<Self> {
        let function_arn = s.split('/').next()?;
        let mut parts = function_arn.splitn(8, ':');
        let (arn, partition, service, region, account, kind, name) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let qualifier = parts.next().filter(|q| !q.is_empty() && !q.contains(':'));
        if arn != "arn" || service != "lambda" || kind != "function" || name.is_empty() {
            return None;
        }
        if partition.is_empty() || region.is_empty() {
            return None;
        }
        Some(FunctionParts {
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            name: name.to_owned(),
            qualifier: qualifier.map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_execution_name_is_the_segment_after_durable_execution() {
        let a = ExecutionArn::parse("arn:aws:lambda:eu-west-1:210987654321:function:payments:7/durable-execution/order-42/0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b").unwrap();
        assert_eq!(a.execution_name(), Some("order-42"));
        for bare in [
            "4cb828b3-5012-4d39-83f9-ac700d4e362c/381241ed-c193-4fb0-9466-ca37c25e3303",
            "arn:aws:lambda:eu-west-1:1:function:f/durable-execution//id",
            "arn:aws:lambda:eu-west-1:1:function:f/durable-execution/name",
        ] {
            assert_eq!(execution_name(bare), None, "{bare}");
        }
    }

    #[test]
    fn real_arns_give_their_parts() {
        let a = ExecutionArn::parse("arn:aws:lambda:us-east-1:123456789012:function:orders:$LATEST/durable-execution/3f1c/6a1f").unwrap();
        let f = a.function().unwrap();
        assert_eq!(
            (
                f.partition.as_str(),
                f.region.as_str(),
                f.account.as_str(),
                f.name.as_str()
            ),
            ("aws", "us-east-1", "123456789012", "orders")
        );
        assert_eq!(f.qualifier.as_deref(), Some("$LATEST"));

        let unq = ExecutionArn::parse(
            "arn:aws-cn:lambda:cn-north-1:1:function:pay/durable-execution/order-42/0f9e",
        )
        .unwrap();
        assert_eq!(unq.function().unwrap().name, "pay");
        assert_eq!(unq.function().unwrap().qualifier, None);
    }

    #[test]
    fn emulator_arns_are_accepted_without_parts() {
        let a = ExecutionArn::parse(
            "c9d0ddd5-4e8b-4da5-ba01-445cf9e50869/b5601dd1-2043-4852-8088-c1ff0fa7bf73",
        )
        .unwrap();
        assert!(a.function().is_none());
        assert!(ExecutionArn::parse("not-an-arn-but-an-id").is_ok());
        assert!(
            ExecutionArn::parse("arn:aws:s3:::bucket/key")
                .unwrap()
                .function()
                .is_none()
        );
    }

    #[test]
    fn malformed_arns_are_rejected() {
        assert_eq!(ExecutionArn::parse(""), Err(ArnError::Empty));
        assert_eq!(ExecutionArn::parse("a b"), Err(ArnError::BadCharacter(1)));
        assert_eq!(ExecutionArn::parse("ab\n"), Err(ArnError::BadCharacter(2)));
        assert_eq!(
            ExecutionArn::parse("x\u{7}y"),
            Err(ArnError::BadCharacter(1))
        );
        let long = "a".repeat(MAX_ARN_LEN + 1);
        assert_eq!(
            ExecutionArn::parse(&long),
            Err(ArnError::TooLong(MAX_ARN_LEN + 1))
        );
        assert!(ExecutionArn::parse(&"a".repeat(MAX_ARN_LEN)).is_ok());
    }
}
