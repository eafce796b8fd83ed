//! Reads one INI section into a `serde` struct: each option's text is parsed
//! as the field's type asks (whole numbers, numbers, `true`/`false`, comma
//! lists, names of enum variants), and a bad value is reported with where it
//! was set, its section, its option and the value itself.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IntoDeserializer, Visitor};

use super::{Options, Setting};

/// Why a section could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Reads `T` from the options of `section`: an option that is not set, or
/// set to an empty value, takes its documented default (`T::OPTIONS`).
pub fn read<T: Options>(section: &str, settings: &BTreeMap<String, Setting>) -> Result<T, Error> {
    let mut options: BTreeMap<&str, Setting> = settings
        .iter()
        .filter(|(_, s)| !s.text.trim().is_empty())
        .map(|(k, s)| (k.as_str(), s.clone()))
        .collect();
    for doc in T::OPTIONS.iter().filter(|d| !d.default.is_empty()) {
        options.entry(doc.name).or_insert_with(|| Setting {
            text: doc.default.to_string(),
            origin: String::new(),
        });
    }
    T::deserialize(Section {
        section,
        options: &options,
    })
}

/// [`read`] of options without an origin, such as a backend's.
pub fn read_options<T: Options>(
    section: &str,
    options: &BTreeMap<String, String>,
) -> Result<T, Error> {
    let settings = options
        .iter()
        .map(|(k, v)| {
            let setting = Setting {
                text: v.clone(),
                origin: String::new(),
            };
            (k.clone(), setting)
        })
        .collect();
    read(section, &settings)
}

/// A section, deserialized as a map of option → value.
struct Section<'a> {
    section: &'a str,
    options: &'a BTreeMap<&'a str, Setting>,
}

impl<'de> de::Deserializer<'de> for Section<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor
            .visit_map(Entries {
                section: self.section,
                iter: self.options.iter(),
                value: None,
            })
            .map_err(|Error(e)| match e.strip_prefix("missing field ") {
                Some(field) => Error(format!(
                    "[{}] {} is not set",
                    self.section,
                    field.trim_matches('`')
                )),
                None => Error(e),
            })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The options of a section, one after the other.
struct Entries<'a> {
    section: &'a str,
    iter: std::collections::btree_map::Iter<'a, &'a str, Setting>,
    value: Option<(&'a str, &'a Setting)>,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        seed.deserialize((*key).into_deserializer()).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (key, value) = self.value.take().expect("a key before its value");
        seed.deserialize(Text(&value.text)).map_err(|Error(why)| {
            let at = if value.origin.is_empty() {
                String::new()
            } else {
                format!("{}: ", value.origin)
            };
            Error(format!(
                "{at}[{}] {key} = {}: {why}",
                self.section, value.text
            ))
        })
    }
}

/// One option's text, parsed as the field's type asks.
struct Text<'a>(&'a str);

impl Text<'_> {
    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, Error> {
        self.0
            .trim()
            .parse()
            .map_err(|_| Error(format!("not {what}")))
    }
}

macro_rules! parsed {
    ($($method:ident $visit:ident $what:literal),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(self.parse($what)?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Text<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(self.0.trim())
    }

    parsed! {
        deserialize_u8 visit_u8 "a whole number",
        deserialize_u16 visit_u16 "a whole number",
        deserialize_u32 visit_u32 "a whole number",
        deserialize_u64 visit_u64 "a whole number",
        deserialize_i8 visit_i8 "a whole number",
        deserialize_i16 visit_i16 "a whole number",
        deserialize_i32 visit_i32 "a whole number",
        deserialize_i64 visit_i64 "a whole number",
        deserialize_f32 visit_f32 "a number",
        deserialize_f64 visit_f64 "a number",
    }

    /// oslo.config's booleans: true/yes/on/1 and false/no/off/0.
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0.trim().to_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => visitor.visit_bool(true),
            "false" | "no" | "off" | "0" => visitor.visit_bool(false),
            _ => Err(Error("not true or false".into())),
        }
    }

    /// An empty value counts as not set.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.0.trim().is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(Text(self.0.trim()))
        }
    }

    /// A comma-separated list (newlines of continuation lines count as commas).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let items = self
            .0
            .split([',', '\n'])
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(Text);
        visitor.visit_seq(de::value::SeqDeserializer::new(items))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let name = self.0.trim();
        if !variants.contains(&name) {
            return Err(Error(format!("not one of {}", variants.join(", "))));
        }
        visitor.visit_enum(name.into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct tuple
        tuple_struct map struct identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Error> for Text<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::config::OptionDoc;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Slow,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Sample {
        count: u32,
        ratio: f64,
        on: bool,
        name: Option<String>,
        #[serde(default)]
        list: Vec<String>,
        mode: Mode,
        label: String,
    }

    const fn doc(name: &'static str, default: &'static str) -> OptionDoc {
        OptionDoc {
            name,
            default,
            cinder: None,
            help: "",
        }
    }

    impl Options for Sample {
        const OPTIONS: &'static [OptionDoc] = &[
            doc("count", ""),
            doc("ratio", ""),
            doc("on", "false"),
            doc("name", ""),
            doc("list", ""),
            doc("mode", "fast"),
            doc("label", "plain"),
        ];
    }

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, Setting> {
        pairs
            .iter()
            .enumerate()
            .map(|(n, (k, v))| {
                let setting = Setting {
                    text: v.to_string(),
                    origin: format!("s.conf:{}", n + 1),
                };
                (k.to_string(), setting)
            })
            .collect()
    }

    const GOOD: &[(&str, &str)] = &[
        ("count", "3"),
        ("ratio", "-0.5"),
        ("on", "Yes"),
        ("name", ""),
        ("list", "a, b,\nc"),
        ("mode", "slow"),
        ("label", " "),
        ("unknown", "ignored"),
    ];

    #[test]
    fn values_take_the_field_types() {
        let s: Sample = read("x", &options(GOOD)).unwrap();
        assert_eq!(
            s,
            Sample {
                count: 3,
                ratio: -0.5,
                on: true,
                name: None,
                list: vec!["a".into(), "b".into(), "c".into()],
                mode: Mode::Slow,
                label: "plain".into(),
            }
        );
    }

    #[test]
    fn unset_options_take_their_documented_default() {
        let s: Sample = read_options(
            "x",
            &[("count".into(), "1".into()), ("ratio".into(), "2".into())].into(),
        )
        .unwrap();
        assert_eq!(
            (s.on, s.mode, s.label.as_str()),
            (false, Mode::Fast, "plain")
        );
        let err = read_options::<Sample>(
            "x",
            &[("count".into(), "1".into()), ("ratio".into(), "z".into())].into(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "[x] ratio = z: not a number");
    }

    #[test]
    fn bad_values_name_file_section_option_and_value() {
        for (option, bad, why) in [
            ("count", "many", "not a whole number"),
            ("ratio", "x", "not a number"),
            ("on", "maybe", "not true or false"),
            ("mode", "medium", "not one of fast, slow"),
        ] {
            let mut pairs = GOOD.to_vec();
            let at = pairs.iter().position(|(k, _)| *k == option).unwrap();
            pairs[at].1 = bad;
            let err = read::<Sample>("x", &options(&pairs))
                .unwrap_err()
                .to_string();
            let line = at + 1;
            assert_eq!(err, format!("s.conf:{line}: [x] {option} = {bad}: {why}"));
        }
    }

    #[test]
    fn a_missing_required_option_is_named() {
        let pairs: Vec<_> = GOOD
            .iter()
            .filter(|(k, _)| *k != "count")
            .copied()
            .collect();
        let err = read::<Sample>("x", &options(&pairs))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "[x] count is not set");
    }
}
