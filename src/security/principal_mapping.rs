//! `ssl.principal.mapping.rules`: how the subject of a client certificate becomes the name of
//! its principal, in Kafka's syntax. Rules are tried in order and the first that matches wins:
//! `DEFAULT` keeps the subject as it is (`CN=alice,O=Example`), and
//! `RULE:pattern/replacement/[LU]` applies when the pattern (a regular expression) matches the
//! whole subject, rewriting it with `$n` group references and, with `L` or `U`, lower- or
//! upper-casing the result. A subject no rule matches has no principal: its connection closes.

use regex::{Captures, Regex};

/// The parsed rules of a listener.
#[derive(Debug)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

#[derive(Debug)]
enum Rule {
    Default,
    Rewrite {
        /// The pattern anchored at both ends: Kafka applies a rule only to a subject it matches whole.
        whole: Regex,
        pattern: Regex,
        replacement: Vec<Piece>,
        case: Case,
    },
}

/// A part of a rule's replacement: text, or the text a group of the pattern matched.
#[derive(Debug)]
enum Piece {
    Text(String),
    Group(usize),
    Named(String),
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Keep,
    Lower,
    Upper,
}

impl Default for PrincipalMapper {
    /// Kafka's default, `DEFAULT`: the subject itself.
    fn default() -> PrincipalMapper {
        PrincipalMapper { rules: vec![Rule::Default] }
    }
}

impl PrincipalMapper {
    /// Parses the rules as the setting writes them, separated by commas or new lines.
    pub fn parse(rules: &str) -> Result<PrincipalMapper, String> {
        let mut parsed = Vec::new();
        let mut rest = rules.trim_start();
        while !rest.is_empty() {
            let number = parsed.len() + 1;
            let bad = |why: &str| format!("ssl.principal.mapping.rules: rule {number} ({:?}) {why}; expected DEFAULT or RULE:pattern/replacement/ with an optional L or U", rest.lines().next().unwrap_or(rest));
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                parsed.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = up_to_slash(after).ok_or_else(|| bad("has no / after its pattern"))?;
                let (replacement, after) = up_to_slash(after).ok_or_else(|| bad("has no / after its replacement"))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let compile = |p: String| Regex::new(&p).map_err(|e| bad(&format!("has a bad pattern: {e}")));
                let pattern_regex = compile(pattern.to_string())?;
                let replacement = parse_replacement(replacement, &pattern_regex).map_err(|e| bad(&e))?;
                parsed.push(Rule::Rewrite { whole: compile(format!(r"\A(?:{pattern})\z"))?, pattern: pattern_regex, replacement, case });
                rest = after;
            } else {
                return Err(bad("is neither"));
            }
            rest = rest.trim_start_matches([' ', '\t', '\r']);
            rest = match rest.chars().next() {
                None => rest,
                Some(',' | '\n') => rest[1..].trim_start(),
                Some(_) => return Err(bad("is followed by more than a comma or a new line")),
            };
        }
        if parsed.is_empty() {
            return Err("ssl.principal.mapping.rules holds no rule (DEFAULT keeps the certificate's subject)".into());
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The principal's name for a certificate `subject` (RFC 2253 form), or None when no
    /// rule matches it.
    pub fn name(&self, subject: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(subject.to_string()),
            Rule::Rewrite { whole, pattern, replacement, case } => {
                if !whole.is_match(subject) {
                    return None;
                }
                let name = pattern
                    .replace_all(subject, |caps: &Captures| {
                        replacement
                            .iter()
                            .map(|piece| match piece {
                                Piece::Text(text) => text.as_str(),
                                Piece::Group(group) => caps.get(*group).map_or("", |m| m.as_str()),
                                Piece::Named(name) => caps.name(name).map_or("", |m| m.as_str()),
                            })
                            .collect::<String>()
                    })
                    .into_owned();
                Some(match case {
                    Case::Keep => name,
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                })
            }
        })
    }
}

/// The text before the first `/` that no `\` escapes, and what follows that `/`.
fn up_to_slash(text: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '/' => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

/// A replacement in Java's syntax, read once: `$n` and `${name}` name groups of the pattern and
/// `\` escapes the next character. Java reads one digit after `$`, then more while the number
/// still names a group; a `$n` beyond the pattern's groups stays literal text, as in Kafka.
/// Refuses what Java would refuse when the rule is applied: a dangling `\`, a `$` that is
/// neither `$n` nor `${name}` of a group the pattern has.
fn parse_replacement(replacement: &str, pattern: &Regex) -> Result<Vec<Piece>, String> {
    let groups = pattern.captures_len() - 1;
    let not_a_group = |what: &str| format!("has {what} in its replacement, which is not a group reference ($1 to ${groups}, or ${{name}} of a named group)");
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        let reference = match (c, chars.peek().copied()) {
            ('\\', _) => {
                text.push(chars.next().ok_or("has a replacement ending in \\")?);
                continue;
            }
            ('$', Some('{')) => {
                chars.next();
                let mut name = String::new();
                let closed = loop {
                    match chars.next() {
                        Some('}') => break true,
                        Some(c) => name.push(c),
                        None => break false,
                    }
                };
                if !closed || !pattern.capture_names().flatten().any(|n| n == name) {
                    return Err(not_a_group(&format!("${{{name}")));
                }
                Piece::Named(name)
            }
            ('$', Some(d)) if d.to_digit(10).is_some_and(|d| d as usize <= groups) => {
                let mut group = 0;
                while let Some(next) = chars.peek().and_then(|d| d.to_digit(10)) {
                    let longer = group * 10 + next as usize;
                    if longer > groups {
                        break;
                    }
                    group = longer;
                    chars.next();
                }
                Piece::Group(group)
            }
            ('$', Some(d)) if d.is_ascii_digit() => {
                text.push('$');
                continue;
            }
            ('$', _) => return Err(not_a_group("a $")),
            (c, _) => {
                text.push(c);
                continue;
            }
        };
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(reference);
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "CN=billing,OU=Services,O=Example Corp,C=DE";
    const PERSON: &str = "CN=Ada Lovelace,OU=Research,O=Example Corp,L=London,C=GB";

    #[test]
    fn the_first_rule_that_matches_the_whole_subject_names_the_principal() {
        let mapper = PrincipalMapper::parse(
            "RULE:^CN=([^,]+),OU=Services,.*$/svc-$1/,\n RULE:^CN=([^,]+),OU=([^,]+),O=[^,]+,L=(.*),C=GB$/$1@$2.$3/L , DEFAULT",
        )
        .unwrap();
        assert_eq!(mapper.name(SERVICE).unwrap(), "svc-billing");
        assert_eq!(mapper.name(PERSON).unwrap(), "ada lovelace@research.london");
        assert_eq!(mapper.name("CN=other,O=Elsewhere").unwrap(), "CN=other,O=Elsewhere");
        assert_eq!(PrincipalMapper::default().name(SERVICE).unwrap(), SERVICE);
    }

    #[test]
    fn without_default_a_subject_no_rule_matches_has_no_name() {
        let mapper = PrincipalMapper::parse("RULE:CN=([a-z]+),OU=Services.*/$1/U").unwrap();
        assert_eq!(mapper.name(SERVICE).unwrap(), "BILLING");
        // A pattern that matches only a part of the subject does not apply.
        assert_eq!(mapper.name(&format!("X{SERVICE}")), None);
        assert_eq!(mapper.name(PERSON), None);
    }

    #[test]
    fn replacements_follow_java_group_references_and_escapes() {
        let mapper = PrincipalMapper::parse(r"RULE:^CN=(?P<who>[^,]+),OU=(\w+).*$/${who}\/$2\$$12$9/").unwrap();
        // $12 is group 1 then "2" (there is no group 12); $9 names no group and stays literal.
        assert_eq!(mapper.name(SERVICE).unwrap(), "billing/Services$billing2$9");
        let slashes = PrincipalMapper::parse(r"RULE:^CN=([^,]+)\/x,.*$/$1/").unwrap();
        assert_eq!(slashes.name("CN=a/x,O=b").unwrap(), "a");
    }

    #[test]
    fn malformed_rules_are_refused_saying_which() {
        for (rules, why) in [
            ("RULE:^CN=(.*)$/$1", "no / after its replacement"),
            ("RULE:^CN=(.*$/$1/", "bad pattern"),
            ("RULE:^CN=(.*)$/$x/", "not a group reference"),
            ("RULE:^CN=(.*)$/${who/", "not a group reference"),
            ("DEFAULT,PRINCIPAL", "rule 2"),
            ("DEFAULT RULE:a/b/", "more than a comma"),
            ("RULE:a/b/Q", "more than a comma"),
            ("  ", "holds no rule"),
        ] {
            let e = PrincipalMapper::parse(rules).unwrap_err();
            assert!(e.contains(why), "{rules:?}: {e}");
        }
    }
}
