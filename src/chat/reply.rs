//! What a command answers, in words both platforms render alike: backticks for names,
//! `<@user>` and `<#channel>` for mentions.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    /// Only the person who asked sees it.
    pub ephemeral: bool,
}

impl Reply {
    pub fn ephemeral(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            ephemeral: true,
        }
    }

    /// Seen by the whole channel.
    pub fn channel(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            ephemeral: false,
        }
    }
}
