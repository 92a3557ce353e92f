//! How the store's statements of many rows name their parameters.

use super::Backend;

/// `$first, $first+1, …` for `n` parameters: an `IN (…)` list.
pub(super) fn holes(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, $2), ($3, $4)` for `rows` rows of `cols` columns.
pub(super) fn values(rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * cols + c + 1));
        }
        out.push(')');
    }
    out
}

#[derive(Clone, Copy)]
pub(super) enum Column {
    Text,
    Int,
}

/// `(CAST($1 AS TEXT), CAST($2 AS BIGINT)), (…)`: rows of parameters typed, since a
/// `VALUES` list in a `FROM` has no column of a table to take its types from.
pub(super) fn typed_values(rows: usize, columns: &[Column]) -> String {
    let mut out = String::with_capacity(rows * columns.len() * 20);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for (c, column) in columns.iter().enumerate() {
            if c > 0 {
                out.push_str(", ");
            }
            let ty = match column {
                Column::Text => "TEXT",
                Column::Int => "BIGINT",
            };
            out.push_str(&format!("CAST(${} AS {ty})", r * columns.len() + c + 1));
        }
        out.push(')');
    }
    out
}

impl Backend {
    /// The database a connection, or a transaction on one, speaks to.
    pub(super) fn of(conn: &sqlx::AnyConnection) -> Backend {
        if conn.backend_name() == "SQLite" {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// A statement of many parameters as this database takes it fastest. SQLite finds a
    /// `$N` by name in a list it scans from the start, once as it prepares the statement
    /// and again as each value is bound: quadratic in the parameters, and at a few thousand
    /// to a statement most of the embedded engine's time. A plain `?` takes the next number
    /// with no look-up, so there `$1, $2, …` written in order become `?`. PostgreSQL takes
    /// only `$N`.
    pub(super) fn bulk(self, sql: String) -> String {
        match self {
            Backend::Sqlite => {
                let rewritten = positional(&sql);
                // Still right when not rewritten, only slow: the tests find such a statement.
                debug_assert!(rewritten.is_some(), "not $1, $2, … in order: {sql}");
                rewritten.unwrap_or(sql)
            }
            Backend::Postgres => sql,
        }
    }
}

/// `sql` with each `$N` as `?`, if they are `$1, $2, …` in the order written and nothing
/// else follows a `$`; otherwise `None`, and `?` would bind the wrong values.
fn positional(sql: &str) -> Option<String> {
    let mut out = String::with_capacity(sql.len());
    let mut next = 1usize;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if after[..digits].parse::<usize>().ok()? != next {
            return None;
        }
        out.push('?');
        next += 1;
        rest = &after[digits..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_in_order_become_positional_on_sqlite_only() {
        let sql = format!("UPDATE alerts SET seen = $1 WHERE id IN ({})", holes(2, 3));
        assert_eq!(
            Backend::Sqlite.bulk(sql.clone()),
            "UPDATE alerts SET seen = ? WHERE id IN (?, ?, ?)"
        );
        assert_eq!(
            Backend::Sqlite.bulk(format!(
                "DELETE FROM t WHERE (a, b) IN (VALUES {})",
                values(2, 2)
            )),
            "DELETE FROM t WHERE (a, b) IN (VALUES (?, ?), (?, ?))"
        );
        assert_eq!(Backend::Postgres.bulk(sql.clone()), sql);
        let typed = typed_values(12, &[Column::Int, Column::Text]);
        let got = Backend::Sqlite.bulk(typed);
        assert_eq!(got.matches('?').count(), 24);
        assert!(got.starts_with("(CAST(? AS BIGINT), CAST(? AS TEXT)), ("));
        assert!(!got.contains('$'));
    }

    #[test]
    fn parameters_out_of_order_or_named_twice_cannot_be_positional() {
        for sql in [
            "SELECT $2, $1",
            "SELECT $1 WHERE a = $1",
            "SELECT $1, $3",
            "SELECT '$.path' FROM t",
            "SELECT $0",
        ] {
            assert_eq!(positional(sql), None, "{sql}");
        }
        assert_eq!(positional("VALUES ($9, $10)"), None);
        assert_eq!(Backend::Sqlite.bulk("SELECT 1".into()), "SELECT 1");
    }
}
