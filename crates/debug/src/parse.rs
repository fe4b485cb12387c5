//! The `scan` file's input: `<memcg id> <nid> <nr_to_scan>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One manual scan request, as written to the kernel's debugfs `scan` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRequest {
    /// Memcg id (`0` or the root's id for shrinkers that are not memcg-aware).
    pub memcg: u32,
    /// Node.
    pub nid: usize,
    /// Objects to scan (`0`: nothing is called, as in the kernel).
    pub nr_to_scan: u64,
}

/// A field of [`ScanRequest`], named in parse errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanField {
    /// The memcg id.
    Memcg,
    /// The node id.
    Nid,
    /// The object count.
    NrToScan,
}

impl fmt::Display for ScanField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Memcg => "memcg id",
            Self::Nid => "nid",
            Self::NrToScan => "nr_to_scan",
        })
    }
}

/// Why a `scan` input line was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseScanError {
    /// Not exactly three whitespace-separated fields.
    FieldCount {
        /// How many fields were found.
        found: usize,
    },
    /// A field is not an unsigned decimal number in range.
    InvalidField {
        /// Which field.
        field: ScanField,
        /// The offending text (truncated to 32 characters).
        text: String,
    },
}

impl fmt::Display for ParseScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FieldCount { found } => write!(
                f,
                "expected `<memcg id> <nid> <nr_to_scan>`, found {found} field(s)"
            ),
            Self::InvalidField { field, text } => {
                write!(f, "invalid {field} {text:?}: expected an unsigned number")
            }
        }
    }
}

impl std::error::Error for ParseScanError {}

fn field<T: FromStr>(field: ScanField, text: &str) -> Result<T, ParseScanError> {
    text.parse().map_err(|_| ParseScanError::InvalidField {
        field,
        text: text.chars().take(32).collect(),
    })
}

impl FromStr for ScanRequest {
    type Err = ParseScanError;

    /// Parses `<memcg id> <nid> <nr_to_scan>`; surrounding whitespace and a
    /// trailing newline (what `echo` writes) are accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fields: Vec<&str> = s.split_whitespace().take(4).collect();
        let [memcg, nid, nr] = fields[..] else {
            let found = if fields.len() == 4 {
                s.split_whitespace().count()
            } else {
                fields.len()
            };
            return Err(ParseScanError::FieldCount { found });
        };
        Ok(Self {
            memcg: field(ScanField::Memcg, memcg)?,
            nid: field(ScanField::Nid, nid)?,
            nr_to_scan: field(ScanField::NrToScan, nr)?,
        })
    }
}

impl fmt::Display for ScanRequest {
    /// The text form [`ScanRequest::from_str`](FromStr) parses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.memcg, self.nid, self.nr_to_scan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_fields_and_round_trips() {
        let r: ScanRequest = " 3 1 500\n".parse().unwrap();
        assert_eq!(
            r,
            ScanRequest {
                memcg: 3,
                nid: 1,
                nr_to_scan: 500
            }
        );
        assert_eq!(r.to_string().parse::<ScanRequest>().unwrap(), r);
    }

    #[test]
    fn typed_errors_for_bad_input() {
        assert_eq!(
            "".parse::<ScanRequest>(),
            Err(ParseScanError::FieldCount { found: 0 })
        );
        assert_eq!(
            "1 2".parse::<ScanRequest>(),
            Err(ParseScanError::FieldCount { found: 2 })
        );
        assert_eq!(
            "1 2 3 4 5".parse::<ScanRequest>(),
            Err(ParseScanError::FieldCount { found: 5 })
        );
        assert_eq!(
            "1 -1 3".parse::<ScanRequest>(),
            Err(ParseScanError::InvalidField {
                field: ScanField::Nid,
                text: "-1".into()
            })
        );
        assert_eq!(
            "99999999999 0 3".parse::<ScanRequest>(),
            Err(ParseScanError::InvalidField {
                field: ScanField::Memcg,
                text: "99999999999".into()
            })
        );
        let long = format!("1 0 {}", "x".repeat(100));
        match long.parse::<ScanRequest>() {
            Err(ParseScanError::InvalidField {
                field: ScanField::NrToScan,
                text,
            }) => assert_eq!(text.len(), 32),
            other => panic!("{other:?}"),
        }
        assert!(ParseScanError::FieldCount { found: 1 }
            .to_string()
            .contains("found 1"));
    }
}
