//! Query parameters as browsers send them: an empty field means no filter. (Text
//! parameters are declared with the pattern `^[^\u0000]*$`: PostgreSQL text cannot
//! hold NUL, so no stored id or type has one.)

use serde::{Deserialize, Deserializer};

/// `?webhook_id=` is the same as no `webhook_id`.
pub fn empty_as_none<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|value| !value.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Filter {
        #[serde(default, deserialize_with = "empty_as_none")]
        webhook_id: Option<String>,
    }

    #[test]
    fn an_empty_field_is_no_filter() {
        let parse = |q: &str| {
            serde_json::from_str::<Filter>(q)
                .expect("parses")
                .webhook_id
        };
        assert_eq!(parse(r#"{"webhook_id": ""}"#), None);
        assert_eq!(parse(r#"{}"#), None);
        assert_eq!(parse(r#"{"webhook_id": "wh"}"#).as_deref(), Some("wh"));
    }
}
