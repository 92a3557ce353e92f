//! Enums stored and sent as words (`succeeded`, `failover`, `slack`): one definition of the
//! word for each variant, read back by `FromStr` and written by `Display` and `as_str`.

/// `string_enum!(Type, "noun", "hint" { Variant = "word", ... })` gives `Type::ALL` (every
/// variant, in order), `as_str`, `Display`, and a `FromStr` whose error reads
/// "unknown noun `word`" followed by the hint (which may be empty).
macro_rules! string_enum {
    ($t:ident, $noun:literal, $hint:literal { $($v:ident = $s:literal),* $(,)? }) => {
        impl $t {
            pub const ALL: [$t; <[&'static str]>::len(&[$($s),*])] = [$($t::$v),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($t::$v => $s),*
                }
            }
        }

        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($t::$v),)*
                    other => Err(format!("unknown {} `{other}`{}", $noun, $hint)),
                }
            }
        }
    };
}

pub(crate) use string_enum;
