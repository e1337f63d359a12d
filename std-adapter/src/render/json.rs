//! The `json` renderer: the selected members as a JSON array, for other tools.

use super::RenderError;
use super::select::Selection;
use crate::member::MemberInfo;

/// Renders the selected members as a pretty-printed JSON array sorted by name, each
/// member as the RPC carries it ([`MemberInfo`]: name, addr, status, tags,
/// incarnation), with a final newline. (`rumor members --format json` prints Serf's
/// shape instead.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonRenderer {
    /// Which members to list.
    pub selection: Selection,
}

impl Default for JsonRenderer {
    fn default() -> Self {
        JsonRenderer {
            selection: Selection::all(),
        }
    }
}

impl JsonRenderer {
    /// Renders the JSON for `members` (every member; the selection is applied here).
    pub fn render_members(&self, members: &[MemberInfo]) -> Result<String, RenderError> {
        let selected: Vec<&MemberInfo> = self.selection.apply(members).collect();
        let mut text =
            serde_json::to_string_pretty(&selected).map_err(|e| RenderError(e.to_string()))?;
        text.push('\n');
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use rumor_core::Status;

    use super::*;
    use crate::render::select::tests::member;

    #[test]
    fn lists_live_members_as_json() {
        let members = vec![
            member("a", "10.0.0.1", Status::Alive, &["role=backend"]),
            member("b", "10.0.0.2", Status::Failed, &[]),
        ];
        let text = JsonRenderer::default().render_members(&members).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["name"], "a");
        assert_eq!(v[0]["addr"], "10.0.0.1:7946");
        assert_eq!(v[0]["status"], "alive");
        assert_eq!(v[0]["tags"]["role"], "backend");
        assert!(text.ends_with("]\n"));
    }
}
