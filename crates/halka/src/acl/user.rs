//! One user: whether it may log in, its passwords, and the commands and keys its rules
//! allow. Rules are Redis's `ACL SETUSER` words, applied in order.

use super::command::{self, Access, Traits};
use super::password::Password;
use halka_cluster::Glob;
use serde::{Deserialize, Serialize};

/// A user as the cluster keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub enabled: bool,
    /// Any password, or none, logs in.
    pub nopass: bool,
    pub passwords: Vec<Password>,
    /// Command rules (`+@all`, `-flushdb`) in order since the last `+@all` or `-@all`.
    pub commands: Vec<String>,
    pub keys: Vec<KeyRule>,
}

/// A key pattern and what it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRule {
    pub pattern: String,
    pub read: bool,
    pub write: bool,
}

/// A rule `ACL SETUSER` could not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Error in ACL SETUSER modifier '{rule}': {reason}")]
pub struct RuleError {
    pub rule: String,
    pub reason: String,
}

impl User {
    /// A user as `ACL SETUSER` creates it: off, no password, no commands, no keys.
    #[must_use]
    pub fn new() -> Self {
        Self {
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            commands: vec!["-@all".into()],
            keys: Vec::new(),
        }
    }

    /// The `default` user before anyone changes it: every command on every key, no
    /// password (what a client that never authenticates runs as).
    #[must_use]
    pub fn unrestricted() -> Self {
        Self {
            enabled: true,
            nopass: true,
            commands: vec!["+@all".into()],
            keys: vec![KeyRule { pattern: "*".into(), read: true, write: true }],
            ..Self::new()
        }
    }

    /// Applies one rule.
    ///
    /// # Errors
    /// The rule is not one halka knows, or names an unknown command or category.
    pub fn apply(&mut self, rule: &[u8]) -> Result<(), RuleError> {
        let text = String::from_utf8_lossy(rule).into_owned();
        let fail = |reason: &str| RuleError { rule: text.clone(), reason: reason.into() };
        let lower = text.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "allkeys" => self.keys = vec![KeyRule { pattern: "*".into(), read: true, write: true }],
            "resetkeys" => self.keys.clear(),
            "allcommands" => self.commands = vec!["+@all".into()],
            "nocommands" => self.commands = vec!["-@all".into()],
            // halka has no channels (no pub/sub) and checks no payloads: accepted so that
            // rules written for Redis apply, and kept as nothing.
            "allchannels" | "resetchannels" | "sanitize-payload" | "skip-sanitize-payload" => {}
            "reset" => *self = Self::new(),
            _ => return self.apply_with_argument(rule, &text, &fail),
        }
        Ok(())
    }

    fn apply_with_argument(
        &mut self,
        rule: &[u8],
        text: &str,
        fail: &dyn Fn(&str) -> RuleError,
    ) -> Result<(), RuleError> {
        match rule.first() {
            Some(b'>') => {
                let password = &rule[1..];
                if !self.passwords.iter().any(|p| p.matches(password)) {
                    self.passwords.push(Password::new(password));
                }
                self.nopass = false;
            }
            Some(b'<') => {
                let before = self.passwords.len();
                self.passwords.retain(|p| !p.matches(&rule[1..]));
                if self.passwords.len() == before {
                    return Err(fail("the user has no such password"));
                }
            }
            Some(b'#' | b'!') => {
                return Err(fail(
                    "halka keeps passwords only under its own salted hash; give the password \
                     itself with '>' (it is never kept in plain text)",
                ));
            }
            Some(b'~' | b'%') => self.keys.push(key_rule(text).map_err(|r| fail(&r))?),
            Some(b'&') => {} // a channel pattern: see `allchannels` above
            Some(b'+' | b'-') => self.command_rule(text).map_err(|r| fail(&r))?,
            Some(b'(') => return Err(fail("selectors are not supported")),
            _ => return Err(fail("Syntax error")),
        }
        Ok(())
    }

    fn command_rule(&mut self, text: &str) -> Result<(), String> {
        let rule = CommandRule::parse(text)?;
        if matches!(rule.what, What::All) {
            self.commands.clear();
        }
        self.commands.push(text.to_ascii_lowercase());
        Ok(())
    }

    /// The user's rules as `ACL LIST` shows them (after `user NAME`).
    #[must_use]
    pub fn describe(&self) -> String {
        let mut words = vec![if self.enabled { "on" } else { "off" }.to_string()];
        if self.nopass {
            words.push("nopass".into());
        }
        words.extend(self.passwords.iter().map(|p| format!("#{}", p.shown())));
        words.push(self.describe_keys());
        words.push(self.commands.join(" "));
        words.retain(|w| !w.is_empty());
        words.join(" ")
    }

    /// The key rules as `ACL GETUSER` shows them.
    #[must_use]
    pub fn describe_keys(&self) -> String {
        let shown = |k: &KeyRule| match (k.read, k.write) {
            (true, true) => format!("~{}", k.pattern),
            (true, false) => format!("%R~{}", k.pattern),
            _ => format!("%W~{}", k.pattern),
        };
        self.keys.iter().map(shown).collect::<Vec<_>>().join(" ")
    }
}

impl Default for User {
    fn default() -> Self {
        Self::new()
    }
}

/// `~pattern`, `%R~pattern`, `%W~pattern`, `%RW~pattern`.
fn key_rule(text: &str) -> Result<KeyRule, String> {
    let (flags, pattern) = match text.strip_prefix('%') {
        None => ("RW", &text[1..]),
        Some(rest) => rest.split_once('~').ok_or("expected %R~, %W~ or %RW~ before the pattern")?,
    };
    let flags = flags.to_ascii_uppercase();
    if flags.is_empty() || !flags.chars().all(|c| c == 'R' || c == 'W') {
        return Err(format!("'{flags}' is not a key permission (R, W or RW)"));
    }
    Glob::new(pattern.as_bytes()).map_err(|e| e.to_string())?;
    Ok(KeyRule { pattern: pattern.into(), read: flags.contains('R'), write: flags.contains('W') })
}

/// One command rule, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CommandRule {
    allow: bool,
    what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    All,
    Category(command::Category),
    Command(String),
}

impl CommandRule {
    fn parse(text: &str) -> Result<Self, String> {
        let allow = text.starts_with('+');
        let name = &text[1..];
        let what = if let Some(cat) = name.strip_prefix('@') {
            if cat.eq_ignore_ascii_case("all") {
                What::All
            } else {
                What::Category(command::category(cat).ok_or("Unknown command category")?)
            }
        } else if name.contains('|') {
            return Err("rules for subcommands are not supported; allow or deny the command".into());
        } else {
            let upper = name.to_ascii_uppercase();
            command::traits(&upper).ok_or("Unknown command")?;
            What::Command(upper)
        };
        Ok(Self { allow, what })
    }

    fn matches(&self, name: &str, traits: &Traits) -> bool {
        match &self.what {
            What::All => true,
            What::Category(c) => traits.is(*c),
            What::Command(n) => n == name,
        }
    }
}

/// A user's rules, ready to check commands against.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub user: User,
    commands: Vec<CommandRule>,
    keys: Vec<(Glob, KeyRule)>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    Command,
    Key(Vec<u8>),
}

impl Compiled {
    #[must_use]
    pub fn new(user: User) -> Self {
        let commands = user.commands.iter().filter_map(|c| CommandRule::parse(c).ok()).collect();
        let keys = user
            .keys
            .iter()
            .filter_map(|k| Some((Glob::new(k.pattern.as_bytes()).ok()?, k.clone())))
            .collect();
        Self { user, commands, keys }
    }

    /// Whether the user may run `name` (upper case) with `args` (the words after it).
    ///
    /// # Errors
    /// The command, or one of its keys, is not allowed.
    pub fn check(&self, name: &str, args: &[bytes::Bytes]) -> Result<(), Denied> {
        let Some(traits) = command::traits_of(name, args.first().map(AsRef::as_ref)) else {
            return Ok(()); // unknown: answered as unknown
        };
        let allowed = self.commands.iter().fold(false, |allowed, rule| {
            if rule.matches(name, &traits) { rule.allow } else { allowed }
        });
        if !allowed {
            return Err(Denied::Command);
        }
        for (key, access) in command::keys(name, traits.keys, args) {
            if !self.key_allowed(key, access) {
                return Err(Denied::Key(key.to_vec()));
            }
        }
        Ok(())
    }

    fn key_allowed(&self, key: &[u8], access: Access) -> bool {
        let (mut read, mut write) = (false, false);
        for (glob, rule) in &self.keys {
            if glob.matches(key) {
                if !access.read && !access.write {
                    return true;
                }
                read |= rule.read;
                write |= rule.write;
            }
        }
        (read || !access.read) && (write || !access.write) && (read || write)
    }
}

#[cfg(test)]
mod tests;
