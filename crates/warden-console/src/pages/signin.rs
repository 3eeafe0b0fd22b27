//! The sign-in page: the operator pastes the API bearer token they were given.

use maud::{Markup, html};

use super::layout;

pub fn page(csrf: &str, message: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            p { "Paste your warden API token (the same token the " code { "warden fleet" } " commands use)." }
            @if let Some(m) = message {
                p.problem role="alert" { (m) }
            }
            form.signin method="post" action="/signin" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="off" required autofocus;
                button #signin type="submit" { "Sign in" }
            }
        },
    )
}
