//! What agents and plugins wrote (host names, tags, step details, errors) made inert before a
//! template renders it: the templates HTML-escape every interpolation, and this removes what
//! escaping leaves live on a screen: ANSI escape sequences (colours, cursor moves, terminal
//! titles) are dropped, and other control characters are shown as `\u{..}` so that nothing
//! invisible reaches the page.

/// `text` with ANSI escape sequences removed and control characters (except newline and tab)
/// shown escaped.
pub fn text(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // C1 CSI: the one-character form of ESC [.
            '\u{9b}' => skip_csi(&mut chars),
            '\n' | '\t' => out.push(c),
            c if c.is_control() || is_invisible_format(c) => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// Bidirectional overrides and isolates can make shown text read differently from what it is.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// After ESC: a CSI (`[`…final byte), an OSC (`]`… BEL or ST), or a two-character sequence.
fn skip_escape(chars: &mut Chars<'_>) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        Some(']' | 'P' | '_' | '^' | 'X') => {
            // String sequences end at BEL or ESC \ (ST).
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    if chars.peek() == Some(&'\\') {
                        chars.next();
                    }
                    break;
                }
            }
        }
        _ => {}
    }
}

/// Parameters and intermediates (0x20..=0x3f) up to one final byte (0x40..=0x7e).
fn skip_csi(chars: &mut Chars<'_>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            break;
        }
        if !('\u{20}'..='\u{3f}').contains(&c) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_sequences_go_and_control_characters_show_escaped() {
        assert_eq!(text("\u{1b}[31mred\u{1b}[0m ok"), "red ok");
        assert_eq!(text("\u{1b}]0;owned title\u{7}after"), "after");
        assert_eq!(text("a\u{0}b\rc\u{8}"), "a\\u{0}b\\u{d}c\\u{8}");
        assert_eq!(text("line\n\tindent"), "line\n\tindent");
        assert_eq!(text("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(
            text("<script>x</script>"),
            "<script>x</script>",
            "escaping is the template's"
        );
    }
}
