//! A driver's typed configuration from the options of its backend section:
//! [`from_options`] deserializes a `serde` struct from the section's strings,
//! parsing each value as its field's type, and every error names the backend,
//! the option and the bad value. An empty value means the option is not set.

use std::fmt::{self, Display};
use std::str::FromStr;

use serde::de::value::{MapDeserializer, StrDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use scoria_core::config::BackendConfig;

use crate::{DriverError, DriverResult};

/// Deserializes `T` from `config.options`; options `T` does not name are left
/// to others (layers, the iSCSI target).
pub fn from_options<T: DeserializeOwned>(config: &BackendConfig) -> DriverResult<T> {
    let set = config
        .options
        .iter()
        .map(|(key, value)| (key.as_str(), value.trim()))
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| (key, Value { key, value }));
    T::deserialize(MapDeserializer::new(set))
        .map_err(|e: Error| DriverError::InvalidConfig(format!("backend {}: {e}", config.name)))
}

/// Why a section's options do not fit.
#[derive(Debug)]
pub(crate) struct Error(String);

impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<M: Display>(msg: M) -> Self {
        Error(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Error(format!("option {field} is required"))
    }
}

/// One option's value, knowing its name for error messages.
#[derive(Clone, Copy)]
struct Value<'a> {
    key: &'a str,
    value: &'a str,
}

impl Value<'_> {
    fn bad(&self, why: impl Display) -> Error {
        Error(format!("{} = {:?}: {why}", self.key, self.value))
    }

    fn parse<T: FromStr>(&self, want: &str) -> Result<T, Error> {
        self.value
            .parse()
            .map_err(|_| self.bad(format_args!("must be {want}")))
    }

    /// oslo.config's spellings of a boolean.
    fn boolean(&self) -> Result<bool, Error> {
        match self.value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(self.bad("must be true or false")),
        }
    }
}

impl<'de> IntoDeserializer<'de, Error> for Value<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parsed {
    ($($method:ident => $visit:ident $ty:ty, $want:literal;)+) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                let parsed: $ty = self.parse($want)?;
                visitor.$visit::<Error>(parsed).map_err(|e| self.bad(e))
            }
        )+
    };
}

impl<'de> de::Deserializer<'de> for Value<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor
            .visit_borrowed_str::<Error>(self.value)
            .map_err(|e| self.bad(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor
            .visit_bool::<Error>(self.boolean()?)
            .map_err(|e| self.bad(e))
    }

    parsed! {
        deserialize_u8 => visit_u8 u8, "a whole number from 0 to 255";
        deserialize_u16 => visit_u16 u16, "a whole number from 0 to 65535";
        deserialize_u32 => visit_u32 u32, "a whole number of at least 0";
        deserialize_u64 => visit_u64 u64, "a whole number of at least 0";
        deserialize_i32 => visit_i32 i32, "a whole number";
        deserialize_i64 => visit_i64 i64, "a whole number";
        deserialize_f32 => visit_f32 f32, "a number";
        deserialize_f64 => visit_f64 f64, "a number";
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let variant: StrDeserializer<'_, Error> = self.value.into_deserializer();
        visitor.visit_enum(variant).map_err(|e| self.bad(e))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        i8 i16 i128 u128 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

/// The fields a configuration struct reads, in declaration order, as its
/// `Deserialize` derive names them: keeps each driver's option docs in step
/// with its struct.
#[cfg(test)]
pub(crate) fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Fields(Option<&'static [&'static str]>);
    impl<'de> de::Deserializer<'de> for &mut Fields {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error("not a struct".into()))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Error> {
            self.0 = Some(fields);
            Err(Error("fields recorded".into()))
        }
        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }
    let mut fields = Fields(None);
    let _ = T::deserialize(&mut fields);
    fields.0.expect("a struct with named fields")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Safe,
    }

    #[derive(Debug, Deserialize)]
    struct Sample {
        name: String,
        #[serde(default)]
        ratio: Option<f64>,
        #[serde(default)]
        count: u16,
        #[serde(default)]
        enabled: bool,
        mode: Mode,
    }

    fn config(options: &[(&str, &str)]) -> BackendConfig {
        BackendConfig {
            name: "b1".into(),
            driver: "sample".into(),
            volume_backend_name: "b1".into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn values_are_parsed_as_their_fields() {
        let Sample {
            name,
            ratio,
            count,
            enabled,
            mode,
        } = from_options(&config(&[
            ("name", " n1 "),
            ("ratio", "2.5"),
            ("count", "7"),
            ("enabled", "Yes"),
            ("mode", "safe"),
            ("unrelated", "x"),
            ("empty", ""),
        ]))
        .unwrap();
        assert_eq!(
            (name.as_str(), ratio, count, enabled, mode),
            ("n1", Some(2.5), 7, true, Mode::Safe)
        );
        assert_eq!(
            field_names::<Sample>(),
            ["name", "ratio", "count", "enabled", "mode"]
        );
    }

    #[test]
    fn errors_name_backend_option_and_value() {
        for (options, expected) in [
            (
                vec![("mode", "fast")],
                "backend b1: option name is required",
            ),
            (
                vec![("name", "n"), ("mode", "fast"), ("count", "lots")],
                "count = \"lots\"",
            ),
            (vec![("name", "n"), ("mode", "quick")], "mode = \"quick\""),
            (
                vec![("name", "n"), ("mode", "fast"), ("enabled", "maybe")],
                "enabled = \"maybe\"",
            ),
            (vec![("name", "n"), ("mode", "fast"), ("ratio", "")], ""),
        ] {
            let result = from_options::<Sample>(&config(&options));
            match (result, expected) {
                (Ok(_), "") => {}
                (Err(DriverError::InvalidConfig(message)), _) if !expected.is_empty() => {
                    assert!(message.starts_with("backend b1: "), "{message}");
                    assert!(message.contains(expected), "{message}");
                }
                (other, _) => panic!("{options:?}: {other:?}"),
            }
        }
    }
}
