//! Kong's ACL decision for one subject (a consumer and its groups), used by
//! ai-mcp-proxy (tools) and ai-a2a-proxy (methods, skills): deny wins; an
//! allow list is an allowlist; no lists, allowed.
//! A request with no consumer is a subject that matches no entry: it may
//! use only what no allow list restricts.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    allow: Option<Vec<String>>,
    deny: Vec<String>,
}

/// Who asks: the consumer's name and groups, from trusted headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub consumer: Option<String>,
    pub groups: Vec<String>,
}

impl Subject {
    /// `groups`: a comma-separated header value.
    pub fn new(consumer: Option<String>, groups: Option<&str>) -> Subject {
        let consumer = consumer.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
        let groups = groups.into_iter().flat_map(|g| g.split(',')).map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect();
        Subject { consumer, groups }
    }

    fn matches(&self, list: &[String]) -> bool {
        list.iter().any(|entry| self.consumer.as_deref() == Some(entry.as_str()) || self.groups.iter().any(|g| g == entry))
    }

    /// The name in metrics, logs and refusals.
    pub fn label(&self) -> &str {
        self.consumer.as_deref().unwrap_or("anonymous")
    }
}

/// Most names one ACL list holds, and the longest name.
const MAX_SUBJECTS: usize = 1024;

/// An ACL list from a configuration, checked: the error names `path`.
pub fn checked_list(path: &str, list: &Option<Vec<String>>) -> Result<Option<Vec<String>>, crate::config::ConfigError> {
    if let Some(items) = list {
        crate::config::check_strings(path, items, MAX_SUBJECTS, 256)?;
    }
    Ok(list.clone())
}

impl Acl {
    pub fn new(allow: Option<Vec<String>>, deny: Option<Vec<String>>) -> Acl {
        // An empty allow list allows no one: a list that names nobody is
        // read as written, the safe way.
        Acl { allow, deny: deny.unwrap_or_default() }
    }

    pub fn allows(&self, subject: &Subject) -> bool {
        if subject.matches(&self.deny) {
            return false;
        }
        self.allow.as_ref().is_none_or(|allow| subject.matches(allow))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use super::*;

    fn list(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn deny_wins_and_allow_lists_are_allowlists() {
        let alice = Subject::new(Some("alice".into()), Some("devs, ops"));
        let bob = Subject::new(Some("bob".into()), None);
        let nobody = Subject::new(None, None);
        let acl = Acl::new(list(&["devs"]), list(&["alice"]));
        assert!(!acl.allows(&alice), "deny wins over a group allow");
        assert!(!acl.allows(&bob), "not on the allow list");
        let by_group = Acl::new(list(&["ops"]), None);
        assert!(by_group.allows(&alice) && !by_group.allows(&bob));
        let deny_only = Acl::new(None, list(&["ops"]));
        assert!(!deny_only.allows(&alice) && deny_only.allows(&bob) && deny_only.allows(&nobody));
        assert!(Acl::default().allows(&nobody));
        assert!(!by_group.allows(&nobody), "no consumer matches no allow entry");
        assert!(!Acl::new(list(&[]), None).allows(&alice), "an empty allow list allows no one");
        assert_eq!(Subject::new(Some("  ".into()), Some(",,")), nobody);
    }
}
