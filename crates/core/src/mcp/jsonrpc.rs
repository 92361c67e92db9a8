//! Typed JSON-RPC 2.0 envelopes as MCP clients send them, read in one pass.
//!
//! A message is read into [`Envelope`]: its `method`, `id`, and the raw text of its `params`,
//! `result` or `error`, which are parsed further only by whoever needs them (an answer's result
//! becomes a `CreateMessageResult` straight from its text, without a `serde_json::Value` tree).
//! Reading is as lenient as JSON-RPC peers need: a field of the wrong JSON type counts as absent
//! ([`Lenient`]), so a sloppy client gets the same answer as one that left the field out.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;

/// One JSON-RPC message: a request (`method` and `id`), a notification (`method`, no `id`), or a
/// response (`id`, no `method`) carrying `result` or `error`.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// `None` when absent or not a string.
    #[serde(default)]
    pub method: Lenient<String>,
    /// `Some` whenever the member is there, `null` included (an error reply echoes it).
    #[serde(default, deserialize_with = "present")]
    pub id: Option<Value>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub params: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    pub result: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    pub error: Option<Lenient<ErrorObject>>,
}

/// A JSON-RPC error object; a missing or mistyped `code` reads as 0, `message` as absent.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorObject {
    #[serde(default)]
    pub code: Lenient<i64>,
    #[serde(default)]
    pub message: Lenient<String>,
}

impl<'a> Envelope<'a> {
    /// Reads one message from its JSON text; a JSON value that is not an object is an error.
    pub fn parse(text: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(text)
    }
}

/// A message as it arrived: one object, or a batch (a JSON array, protocol 2025-03-26).
#[derive(Debug)]
pub enum Incoming<'a> {
    Single(Result<Envelope<'a>, serde_json::Error>),
    Batch(Vec<Result<Envelope<'a>, serde_json::Error>>),
}

impl<'a> Incoming<'a> {
    /// Reads `raw`. `Err` is a JSON syntax error (the whole message is unreadable); an `Err`
    /// inside is one well-formed value that is not a JSON-RPC object.
    pub fn parse(raw: &'a [u8]) -> Result<Self, serde_json::Error> {
        let first = raw.iter().find(|byte| !byte.is_ascii_whitespace());
        if first == Some(&b'[') {
            let items: Vec<&'a RawValue> = serde_json::from_slice(raw)?;
            return Ok(Incoming::Batch(
                items
                    .into_iter()
                    // From bytes, as a single message is: one reader type, one copy in the wasm.
                    .map(|item| serde_json::from_slice(item.get().as_bytes()))
                    .collect(),
            ));
        }
        match Envelope::parse(raw) {
            Ok(envelope) => Ok(Incoming::Single(Ok(envelope))),
            // Valid JSON of another shape (`42`, `"x"`): not a JSON-RPC message, but readable.
            Err(err) if err.is_data() => Ok(Incoming::Single(Err(err))),
            Err(err) => Err(err),
        }
    }
}

/// `Some` for a member that is there, even as `null` (which `Option` alone reads as `None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A field read leniently: `None` when it holds another JSON type than `T` reads from. Objects
/// read as structs only from a JSON object (serde would take a struct from an array too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<T> Lenient<T> {
    pub fn into_option(self) -> Option<T> {
        self.0
    }
}

/// The JSON types a [`Lenient`] field accepts; every other one reads as `None`.
pub trait Shape<'de>: Sized {
    fn from_text(_text: &str) -> Option<Self> {
        None
    }
    fn from_u64(_number: u64) -> Option<Self> {
        None
    }
    fn from_i64(_number: i64) -> Option<Self> {
        None
    }
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de> Shape<'de> for String {
    fn from_text(text: &str) -> Option<Self> {
        Some(text.to_string())
    }
}

impl<'de> Shape<'de> for u64 {
    fn from_u64(number: u64) -> Option<Self> {
        Some(number)
    }
}

impl<'de> Shape<'de> for i64 {
    fn from_u64(number: u64) -> Option<Self> {
        i64::try_from(number).ok()
    }
    fn from_i64(number: i64) -> Option<Self> {
        Some(number)
    }
}

/// Makes structs [`Lenient`] fields that read from a JSON object only.
macro_rules! lenient_object {
    ($($ty:ty),* $(,)?) => {$(
        impl<'de> $crate::mcp::jsonrpc::Shape<'de> for $ty {
            fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
                <$ty as serde::Deserialize>::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )
                .map(Some)
            }
        }
    )*};
}

pub(crate) use lenient_object;

lenient_object!(ErrorObject);

impl<'de, T: Shape<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenientVisitor<T>(PhantomData<T>);

        impl<'de, T: Shape<'de>> Visitor<'de> for LenientVisitor<T> {
            type Value = Lenient<T>;

            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_text(text)))
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_u64(number)))
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_i64(number)))
            }
            fn visit_f64<E: de::Error>(self, _number: f64) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_bool<E: de::Error>(self, _value: bool) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::from_map(map).map(Lenient)
            }
        }

        deserializer.deserialize_any(LenientVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    struct Info {
        #[serde(default)]
        name: Lenient<String>,
    }
    lenient_object!(Info);

    #[derive(Debug, Deserialize)]
    struct Holder {
        #[serde(default)]
        info: Lenient<Info>,
        #[serde(default)]
        count: Lenient<u64>,
        #[serde(default)]
        code: Lenient<i64>,
    }

    #[test]
    fn lenient_fields_read_only_their_own_json_type() {
        let read = |value: Value| serde_json::from_value::<Holder>(value).unwrap();
        let good = read(json!({"info": {"name": "n", "x": [1]}, "count": 3, "code": -5}));
        assert_eq!(good.info.0.unwrap().name.0.as_deref(), Some("n"));
        assert_eq!(good.count.0, Some(3));
        assert_eq!(good.code.0, Some(-5));
        for wrong in [
            json!(null),
            json!(true),
            json!(1.5),
            json!("s"),
            json!([{"name": "n"}]),
        ] {
            let holder = read(json!({"info": wrong, "count": wrong, "code": wrong}));
            assert_eq!(holder.info.0, None, "{wrong}");
            assert_eq!(holder.count.0, None, "{wrong}");
            assert_eq!(holder.code.0, None, "{wrong}");
        }
        let negative = read(json!({"count": -1, "code": u64::MAX, "info": {"name": 7}}));
        assert_eq!(negative.count.0, None);
        assert_eq!(negative.code.0, None);
        assert_eq!(negative.info.0.unwrap().name.0, None);
        assert!(read(json!({})).info.0.is_none());
    }

    #[test]
    fn envelopes_keep_null_ids_and_raw_payloads() {
        let request = Envelope::parse(br#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#).unwrap();
        assert_eq!(request.method.0.as_deref(), Some("ping"));
        assert_eq!(request.id, Some(json!("a")));
        let notification = Envelope::parse(br#"{"method":"notifications/x"}"#).unwrap();
        assert_eq!(notification.id, None);
        // A null id is an id; a method that is not a string is no method.
        let response =
            Envelope::parse(br#"{"id":null,"method":5,"result":{"a":[1]},"error":7}"#).unwrap();
        assert_eq!(response.id, Some(Value::Null));
        assert_eq!(response.method.0, None);
        assert_eq!(response.result.unwrap().get(), r#"{"a":[1]}"#);
        assert!(response.error.as_ref().unwrap().0.is_none());
        let error = Envelope::parse(br#"{"id":1,"error":{"code":-1,"message":"no"}}"#).unwrap();
        let error = error.error.unwrap().0.unwrap();
        assert_eq!(
            (error.code.0, error.message.0.as_deref()),
            (Some(-1), Some("no"))
        );
    }

    #[test]
    fn incoming_tells_syntax_errors_from_other_shapes() {
        assert!(Incoming::parse(b"{not json").is_err());
        assert!(Incoming::parse(b"[1,").is_err());
        assert!(matches!(
            Incoming::parse(b" 42"),
            Ok(Incoming::Single(Err(_)))
        ));
        let Ok(Incoming::Batch(items)) = Incoming::parse(br#" [{"id":1,"method":"ping"}, 3]"#)
        else {
            panic!("a batch")
        };
        assert!(items[0].is_ok() && items[1].is_err());
    }
}
