//! Error text that is safe to log, report in status or print: some kube errors quote what
//! may be credentials, and are described without the quote.
//!
//! The kubeconfig parser quotes the offending line of the file (a `token:` line, say), and
//! a failed auth exec plugin is reported with its command line and its whole output
//! (which holds the token when it printed one); its output, when it does not parse, is
//! quoted too.

use std::error::Error;

use kube::client::AuthError;
use kube::config::KubeconfigError;

/// The text of `error` with its causes (`{:#}`), or a description without quotes from
/// credentials when it or one of its causes may quote them.
pub fn error_text(error: &anyhow::Error) -> String {
    withheld(error.as_ref()).unwrap_or_else(|| format!("{error:#}"))
}

/// A description of `error` without quotes from credentials, when it or one of its
/// causes may quote them; `None` when its usual text is safe to show.
pub fn withheld(error: &(dyn Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(text) = describe(e) {
            return Some(text);
        }
        cause = e.source();
    }
    None
}

fn describe(e: &(dyn Error + 'static)) -> Option<String> {
    const WHY: &str = "withheld: it may quote credentials";
    if let Some(KubeconfigError::Parse(parse)) = e.downcast_ref::<KubeconfigError>() {
        let at = parse
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        return Some(format!(
            "failed to parse kubeconfig YAML{at} (the parser's message is {WHY})"
        ));
    }
    match e.downcast_ref::<AuthError>()? {
        AuthError::AuthExecRun { out, .. } => Some(format!(
            "the kubeconfig's auth exec command failed with {} (its command line and output are {WHY})",
            out.status
        )),
        AuthError::AuthExecParse(_) => Some(format!(
            "failed to parse the output of the kubeconfig's auth exec command (the parser's message is {WHY})"
        )),
        AuthError::ParseTokenKey(_) => Some(format!(
            "failed to parse the kubeconfig's token key (the parser's message is {WHY})"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-b3arer-t0ken";

    #[test]
    fn a_kubeconfig_that_does_not_parse_is_described_without_its_lines() {
        // A user entry mistyped as a string: the parser's own message quotes the line.
        let text = format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: me\n  user: \"token: {SECRET}\"\n"
        );
        let e = kube::config::Kubeconfig::from_yaml(&text).unwrap_err();
        assert!(e.to_string().contains(SECRET), "the premise: {e}");
        let shown = withheld(&e).unwrap();
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("line 5"), "{shown}");
        // Wrapped, as the discovery task gets it.
        let wrapped = anyhow::Error::from(e).context("hub");
        assert!(!error_text(&wrapped).contains(SECRET));
    }

    #[test]
    fn other_errors_keep_their_text() {
        let e = std::io::Error::other("connection refused");
        assert_eq!(withheld(&e), None);
        let wrapped = anyhow::Error::from(e).context("hub");
        assert_eq!(error_text(&wrapped), "hub: connection refused");
    }
}
