//! The INI dialect of oslo.config (cinder.conf): `[section]` headers,
//! `option = value` (or `option: value`) lines, `#`/`;` comment lines,
//! indented continuation lines, matching quotes around a value stripped,
//! repeated options (the last one wins), several files read in order, and
//! `$option` / `${section.option}` substitution with `$$` for a dollar sign.
//! Every value remembers where it was set, for error messages.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

/// The section every other section may refer to in substitutions.
pub const DEFAULT: &str = "DEFAULT";

/// Where a value was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of a configuration file.
    File { path: PathBuf, line: usize },
    /// A `SCORIA_<SECTION>__<OPTION>` environment variable.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// One option's value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub origin: Origin,
}

/// The options of every section read so far: section → option → value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ini {
    sections: BTreeMap<String, BTreeMap<String, Value>>,
}

/// oslo.config's group names: `DEFAULT` as written, every other one in lower case.
pub fn section_name(name: &str) -> String {
    if name == DEFAULT {
        name.to_string()
    } else {
        name.to_lowercase()
    }
}

impl Ini {
    /// Reads `text` (the content of `path`) over what was read before: an
    /// option set again replaces the earlier value.
    pub fn read(&mut self, path: &Path, text: &str) -> anyhow::Result<()> {
        let mut section: Option<String> = None;
        // The option being read: its name, first line and lines so far.
        let mut pending: Option<(String, usize, Vec<String>)> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_end();
            let at = || format!("{}:{}", path.display(), n + 1);
            if line.is_empty() {
                self.flush(path, section.as_deref(), pending.take());
                continue;
            }
            if line.starts_with([' ', '\t']) {
                match &mut pending {
                    Some((_, _, lines)) => lines.push(line.trim_start().to_string()),
                    None => bail!("{}: indented line continues no option: '{line}'", at()),
                }
                continue;
            }
            self.flush(path, section.as_deref(), pending.take());
            if line.starts_with(['#', ';']) {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| anyhow!("{}: '{line}' is not a [section] header", at()))?;
                let name = section_name(name);
                self.sections.entry(name.clone()).or_default();
                section = Some(name);
                continue;
            }
            let (key, value) = split_assignment(line)
                .ok_or_else(|| anyhow!("{}: expected 'option = value', got '{line}'", at()))?;
            if section.is_none() {
                bail!("{}: '{key}' comes before any [section] header", at());
            }
            pending = Some((key.to_string(), n + 1, vec![value.to_string()]));
        }
        self.flush(path, section.as_deref(), pending);
        Ok(())
    }

    /// Stores a finished option: its lines joined by newlines.
    fn flush(
        &mut self,
        path: &Path,
        section: Option<&str>,
        pending: Option<(String, usize, Vec<String>)>,
    ) {
        if let (Some(section), Some((key, line, lines))) = (section, pending) {
            let origin = Origin::File {
                path: path.to_path_buf(),
                line,
            };
            self.set(section, &key, lines.join("\n"), origin);
        }
    }

    /// Reads a file over what was read before.
    pub fn read_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        self.read(path, &text)
    }

    /// Applies `SCORIA_<SECTION>__<OPTION>` variables (`SCORIA_DEFAULT__HOST`,
    /// `SCORIA_DATABASE__CONNECTION`): the option in lower case, the section in
    /// lower case unless it is `DEFAULT`.
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        for (name, value) in vars {
            let Some((section, key)) = name
                .strip_prefix("SCORIA_")
                .and_then(|rest| rest.split_once("__"))
            else {
                continue;
            };
            let (section, key) = (section_name(section), key.to_lowercase());
            self.set(&section, &key, value, Origin::Env(name.clone()));
        }
    }

    /// Sets an option, replacing an earlier value.
    pub fn set(&mut self, section: &str, key: &str, text: String, origin: Origin) {
        self.sections
            .entry(section.to_string())
            .or_default()
            .insert(key.to_string(), Value { text, origin });
    }

    /// An option's value as written, if set.
    pub fn get(&self, section: &str, key: &str) -> Option<&Value> {
        self.sections.get(&section_name(section))?.get(key)
    }

    /// Whether the file has this section.
    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(&section_name(section))
    }

    /// Every option of `section` with its substitutions made. `default` gives
    /// the documented default of an option a substitution names that no file
    /// sets, by (section, option).
    pub fn resolved(
        &self,
        section: &str,
        default: &dyn Fn(&str, &str) -> Option<&'static str>,
    ) -> anyhow::Result<BTreeMap<String, Value>> {
        let section = section_name(section);
        let Some(options) = self.sections.get(&section) else {
            return Ok(BTreeMap::new());
        };
        let resolver = Resolver { ini: self, default };
        options
            .iter()
            .map(|(key, value)| {
                let text = resolver.value(&section, key, value, &mut HashSet::new())?;
                Ok((
                    key.clone(),
                    Value {
                        text,
                        origin: value.origin.clone(),
                    },
                ))
            })
            .collect()
    }
}

/// Splits `option = value` or `option: value` at whichever comes first, as
/// oslo.config does, and strips matching quotes around the value.
fn split_assignment(line: &str) -> Option<(&str, &str)> {
    let at = match (line.find('='), line.find(':')) {
        (Some(e), Some(c)) => e.min(c),
        (Some(i), None) | (None, Some(i)) => i,
        (None, None) => return None,
    };
    let key = line[..at].trim();
    let value = line[at + 1..].trim();
    if key.is_empty() {
        return None;
    }
    let quoted = value.len() >= 2
        && (value.starts_with('"') || value.starts_with('\''))
        && value.ends_with(&value[..1]);
    Some((
        key,
        if quoted {
            &value[1..value.len() - 1]
        } else {
            value
        },
    ))
}

/// Makes `$option`, `${option}` and `${section.option}` substitutions.
struct Resolver<'a> {
    ini: &'a Ini,
    default: &'a dyn Fn(&str, &str) -> Option<&'static str>,
}

impl Resolver<'_> {
    /// `value` (of `section`'s `key`) with its references replaced; `seen`
    /// holds the options being resolved, to report a reference loop.
    fn value(
        &self,
        section: &str,
        key: &str,
        value: &Value,
        seen: &mut HashSet<(String, String)>,
    ) -> anyhow::Result<String> {
        let fail = |why: String| {
            anyhow!(
                "{}: [{section}] {key} = {}: {why}",
                value.origin,
                value.text
            )
        };
        if !seen.insert((section.to_string(), key.to_string())) {
            return Err(fail("the substitution refers back to itself".into()));
        }
        let mut out = String::new();
        let mut rest = value.text.as_str();
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            let (name, after) = if let Some(r) = rest.strip_prefix('$') {
                out.push('$');
                rest = r;
                continue;
            } else if let Some(r) = rest.strip_prefix('{') {
                let end = r
                    .find('}')
                    .ok_or_else(|| fail("'${' has no closing '}'".into()))?;
                (&r[..end], &r[end + 1..])
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            if name.is_empty() {
                // A lone `$` stays as written.
                out.push('$');
                continue;
            }
            let text = self
                .reference(section, name, seen)?
                .ok_or_else(|| fail(format!("${name} names no option")))?;
            out.push_str(&text);
            rest = after;
        }
        out.push_str(rest);
        seen.remove(&(section.to_string(), key.to_string()));
        Ok(out)
    }

    /// The value `name` refers to from `section`: `other.option` in section
    /// `other`; else `option` in `section`, then in `DEFAULT`; a file's value
    /// before the documented default.
    fn reference(
        &self,
        section: &str,
        name: &str,
        seen: &mut HashSet<(String, String)>,
    ) -> anyhow::Result<Option<String>> {
        let candidates = match name.split_once('.') {
            Some((other, option)) => vec![(section_name(other), option)],
            None => vec![(section.to_string(), name), (DEFAULT.to_string(), name)],
        };
        for (s, option) in candidates {
            if let Some(v) = self.ini.get(&s, option) {
                return self.value(&s, option, v, seen).map(Some);
            }
            if let Some(d) = (self.default)(&s, option) {
                return Ok(Some(d.to_string()));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Ini> {
        let mut ini = Ini::default();
        ini.read(Path::new("a.conf"), text)?;
        Ok(ini)
    }

    fn no_default(_: &str, _: &str) -> Option<&'static str> {
        None
    }

    fn resolved(ini: &Ini, section: &str, key: &str) -> anyhow::Result<String> {
        let options = ini.resolved(section, &no_default)?;
        Ok(options[key].text.clone())
    }

    fn text<'a>(ini: &'a Ini, section: &str, key: &str) -> &'a str {
        &ini.get(section, key).unwrap().text
    }

    #[test]
    fn sections_options_and_comments() {
        let ini = parse(
            "# leading comment\n[DEFAULT]\nhost = a\n; another\nzone: b\n\n[Nova]\ntimeout=5\n",
        )
        .unwrap();
        assert_eq!(text(&ini, "DEFAULT", "host"), "a");
        assert_eq!(text(&ini, "DEFAULT", "zone"), "b");
        // Section names other than DEFAULT are case-insensitive.
        assert_eq!(text(&ini, "nova", "timeout"), "5");
        assert_eq!(
            ini.get("DEFAULT", "host").unwrap().origin,
            Origin::File {
                path: "a.conf".into(),
                line: 3
            }
        );
    }

    #[test]
    fn first_of_equals_or_colon_splits_and_quotes_are_stripped() {
        let ini = parse(
            "[DEFAULT]\nurl = http://h:5/x\nk: a=b\nq = \"quoted # text\"\ns = 'x'\nodd = \"x'\n",
        )
        .unwrap();
        assert_eq!(text(&ini, "DEFAULT", "url"), "http://h:5/x");
        assert_eq!(text(&ini, "DEFAULT", "k"), "a=b");
        assert_eq!(text(&ini, "DEFAULT", "q"), "quoted # text");
        assert_eq!(text(&ini, "DEFAULT", "s"), "x");
        assert_eq!(text(&ini, "DEFAULT", "odd"), "\"x'");
    }

    #[test]
    fn indented_lines_continue_the_value_until_a_blank_line() {
        let ini = parse("[DEFAULT]\nlist = a,\n   b,\n\tc\n\nnext = 1\n").unwrap();
        assert_eq!(text(&ini, "DEFAULT", "list"), "a,\nb,\nc");
        assert_eq!(text(&ini, "DEFAULT", "next"), "1");
        let err = parse("[DEFAULT]\n\n  stray\n").unwrap_err().to_string();
        assert!(err.contains("a.conf:3"), "{err}");
    }

    #[test]
    fn repeated_options_and_later_files_win() {
        let mut ini = parse("[DEFAULT]\nhost = a\nhost = b\nzone = z\n").unwrap();
        assert_eq!(text(&ini, "DEFAULT", "host"), "b");
        ini.read(Path::new("b.conf"), "[DEFAULT]\nhost = c\n")
            .unwrap();
        assert_eq!(text(&ini, "DEFAULT", "host"), "c");
        assert_eq!(text(&ini, "DEFAULT", "zone"), "z");
    }

    #[test]
    fn environment_overrides_files() {
        let mut ini = parse("[database]\nconnection = x\n").unwrap();
        ini.apply_env([
            ("SCORIA_DATABASE__CONNECTION".to_string(), "y".to_string()),
            ("SCORIA_DEFAULT__HOST".to_string(), "h".to_string()),
            ("SCORIA_DATA_DIR".to_string(), "ignored".to_string()),
            ("OTHER__X".to_string(), "ignored".to_string()),
        ]);
        assert_eq!(text(&ini, "database", "connection"), "y");
        assert_eq!(text(&ini, "DEFAULT", "host"), "h");
        assert_eq!(
            ini.get("DEFAULT", "host").unwrap().origin,
            Origin::Env("SCORIA_DEFAULT__HOST".into())
        );
        assert!(ini.get("DEFAULT", "data_dir").is_none());
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        for (text, line) in [
            ("[a]\nno equals sign", 2),
            ("[DEFAULT\n", 1),
            ("[ ]\n", 1),
            ("[a]\n= value\n", 2),
            ("option = before any section\n", 1),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(&format!("a.conf:{line}")), "{text:?}: {err}");
        }
    }

    #[test]
    fn substitutions_from_the_section_default_and_other_sections() {
        let ini = parse(
            "[DEFAULT]\nstate_path = /var/lib/scoria\nhost = h1\n\
             [b1]\nfile_volumes_dir = $state_path/b1\nname = ${host}-x\n\
             own = $name/y\nother = ${b2.dir}\nprice = $$5 and $ alone\n\
             [b2]\ndir = $state_path/two\n",
        )
        .unwrap();
        assert_eq!(
            resolved(&ini, "b1", "file_volumes_dir").unwrap(),
            "/var/lib/scoria/b1"
        );
        assert_eq!(resolved(&ini, "b1", "name").unwrap(), "h1-x");
        assert_eq!(resolved(&ini, "b1", "own").unwrap(), "h1-x/y");
        assert_eq!(
            resolved(&ini, "b1", "other").unwrap(),
            "/var/lib/scoria/two"
        );
        assert_eq!(resolved(&ini, "b1", "price").unwrap(), "$5 and $ alone");
    }

    #[test]
    fn substitution_of_a_documented_default() {
        let ini = parse("[DEFAULT]\nwhere = $storage_availability_zone-1\n").unwrap();
        let default =
            |s: &str, k: &str| (s == DEFAULT && k == "storage_availability_zone").then_some("nova");
        assert_eq!(
            ini.resolved(DEFAULT, &default).unwrap()["where"].text,
            "nova-1"
        );
    }

    #[test]
    fn substitution_errors_name_the_option() {
        let ini = parse("[s]\na = $missing\nb = $c\nc = $b\nd = ${open\n").unwrap();
        let err = ini.resolved("s", &no_default).unwrap_err().to_string();
        assert!(err.contains("a.conf:2: [s] a = $missing"), "{err}");
        let loops = parse("[s]\nb = $c\nc = $b\n").unwrap();
        let err = loops.resolved("s", &no_default).unwrap_err().to_string();
        assert!(err.contains("refers back"), "{err}");
        let open = parse("[s]\nd = ${open\n").unwrap();
        let err = open.resolved("s", &no_default).unwrap_err().to_string();
        assert!(err.contains("no closing"), "{err}");
    }
}
