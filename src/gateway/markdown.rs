//! A README rendered for the dataset page: CommonMark (with tables, strikethrough and task
//! lists) by pulldown-cmark, sanitized.
//!
//! Invariant: nothing an author wrote becomes markup other than what Markdown itself
//! produces. Raw HTML, block or inline, is shown as text (escaped); a link keeps only an
//! `http:`, `https:` or `mailto:` target or a relative one (a `javascript:` or `data:` link
//! becomes plain text); an image becomes a link to it (the page's policy loads nothing).
//! The page's `Content-Security-Policy` would stop a script anyway; this keeps the markup
//! itself clean.

use pulldown_cmark::{html, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

/// Escapes text for HTML content and attribute values.
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Renders `text` (Markdown) to sanitized HTML.
pub(super) fn render(text: &str) -> String {
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    // For each open link or image: whether its start was kept (its end must match).
    let mut open: Vec<bool> = Vec::new();
    let events = Parser::new_ext(text, opts).filter_map(|ev| match ev {
        Event::Html(s) | Event::InlineHtml(s) => Some(Event::Text(s)),
        Event::Start(Tag::HtmlBlock) | Event::End(TagEnd::HtmlBlock) => None,
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let keep = safe_url(&dest_url);
            open.push(keep);
            keep.then_some(Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }))
        }
        Event::Start(Tag::Image {
            dest_url, title, ..
        }) => {
            let keep = safe_url(&dest_url);
            open.push(keep);
            keep.then_some(Event::Start(Tag::Link {
                link_type: LinkType::Inline,
                dest_url,
                title,
                id: CowStr::from(""),
            }))
        }
        Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => {
            if open.pop().unwrap_or(false) {
                Some(Event::End(TagEnd::Link))
            } else {
                None
            }
        }
        other => Some(other),
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

/// Whether a link target may stay a link: relative (no scheme), or `http:`, `https:`,
/// `mailto:`. Whitespace or control characters anywhere (browsers drop some of them from a
/// scheme, so `java\tscript:` would run) make it unsafe.
fn safe_url(url: &str) -> bool {
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return false;
    }
    match url.find(':') {
        None => true,
        Some(i) => {
            let before = &url[..i];
            if before.contains(['/', '?', '#']) {
                return true; // the colon is in a path or query: no scheme
            }
            ["http", "https", "mailto"]
                .iter()
                .any(|s| before.eq_ignore_ascii_case(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_and_sanitized() {
        let out = render(
            "# Worm tracks\n\nSome *emphasis* and a [paper](https://doi.org/10.1/x).\n\n\
             <script>alert(1)</script>\n\n<b onclick=\"x()\">bold</b> inline <i>html</i>\n\n\
             [bad](javascript:alert(1)) [data](data:text/html,x) [tab](java\tscript:x)\n\n\
             ![fig](figs/a.png) ![evil](javascript:x)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(out.contains("<h1>Worm tracks</h1>"), "{out}");
        assert!(out.contains("<em>emphasis</em>"), "{out}");
        assert!(
            out.contains("<a href=\"https://doi.org/10.1/x\">paper</a>"),
            "{out}"
        );
        assert!(
            out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{out}"
        );
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("<b "), "{out}");
        assert!(!out.contains("<i>"), "{out}");
        assert!(!out.contains("javascript:"), "{out}");
        assert!(!out.contains("data:"), "{out}");
        assert!(out.contains("<a href=\"figs/a.png\">fig</a>"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        assert!(out.contains("<table>"), "{out}");
        assert!(safe_url("data/file:1.csv"));
        assert!(safe_url("mailto:ana@lab.org"));
        assert!(!safe_url("JavaScript:x"));
        assert!(!safe_url("vbscript:x"));
    }
}
