//! Reads a v4/v5 SQLite database (v5-inventory §5) into [`db::import::LegacyData`].
//!
//! Columns that older versions lack (v4 has no `owner_id`, `is_approved`, ...) read as their
//! absent value; a value of the wrong kind is an error naming the table, the row and the column.
//! The file is opened read-only and checked with `PRAGMA quick_check` first, so a damaged or
//! foreign file is refused before anything is written anywhere.

use anyhow::{bail, Context};
use db::import::{LegacyData, LegacySnapshot, LegacyTask, LegacyUser};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use std::collections::HashSet;
use std::path::PathBuf;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

/// `sqlite:///relative/path`, `sqlite:////absolute/path` (SQLAlchemy's form, as v5's
/// `DATABASE_URL`) or a plain path.
pub fn sqlite_path(url: &str) -> anyhow::Result<PathBuf> {
    let path = match url.strip_prefix("sqlite:///") {
        Some(rest) => rest,
        None if url.starts_with("sqlite:") => {
            bail!("--sqlite-url must be sqlite:///PATH (relative) or sqlite:////PATH (absolute), not {url}")
        }
        None => url,
    };
    if path.is_empty() {
        bail!("--sqlite-url names no file");
    }
    Ok(PathBuf::from(path))
}

/// Reads every user, task and progress snapshot.
pub fn read(path: &std::path::Path) -> anyhow::Result<LegacyData> {
    if !path.is_file() {
        bail!("{} does not exist or is not a file", path.display());
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .with_context(|| format!("{} is not a readable SQLite database", path.display()))?;
    if check != "ok" {
        bail!(
            "{} is damaged (SQLite quick_check: {check})",
            path.display()
        );
    }
    Ok(LegacyData {
        users: read_users(&conn)?,
        tasks: read_tasks(&conn)?,
        snapshots: read_snapshots(&conn)?,
    })
}

/// One table's columns, so absent ones can be selected as NULL.
struct Table {
    name: &'static str,
    columns: HashSet<String>,
}

impl Table {
    fn open(conn: &Connection, name: &'static str, required: bool) -> anyhow::Result<Option<Self>> {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({name})"))?;
        let columns: HashSet<String> = stmt
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<Result<_, _>>()?;
        if columns.is_empty() {
            if required {
                bail!("the SQLite database has no {name} table: is it a pcap_analyzer v4/v5 database?");
            }
            return Ok(None);
        }
        Ok(Some(Table { name, columns }))
    }

    /// `SELECT` of `wanted` in that order, NULL for the columns this version does not have.
    fn select(&self, wanted: &[&str]) -> anyhow::Result<String> {
        let cols: Vec<String> = wanted
            .iter()
            .map(|c| {
                if self.columns.contains(*c) {
                    format!("\"{c}\"")
                } else {
                    "NULL".to_string()
                }
            })
            .collect();
        Ok(format!("SELECT {} FROM {}", cols.join(", "), self.name))
    }

    fn rows(&self, conn: &Connection, wanted: &[&str]) -> anyhow::Result<Vec<Row>> {
        let mut stmt = conn.prepare(&self.select(wanted)?)?;
        let n = wanted.len();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())?
            .collect::<Result<Vec<Vec<Value>>, _>>()
            .with_context(|| format!("reading the {} table", self.name))?;
        Ok(rows
            .into_iter()
            .enumerate()
            .map(|(i, values)| Row {
                table: self.name,
                number: i + 1,
                names: wanted.iter().map(|s| s.to_string()).collect(),
                values,
            })
            .collect())
    }
}

/// One row, with typed getters whose errors say where the bad value is.
struct Row {
    table: &'static str,
    number: usize,
    names: Vec<String>,
    values: Vec<Value>,
}

impl Row {
    fn value(&self, col: &str) -> &Value {
        let i = self
            .names
            .iter()
            .position(|n| n == col)
            .unwrap_or(usize::MAX);
        self.values.get(i).unwrap_or(&Value::Null)
    }

    fn fail<T>(&self, col: &str, what: &str) -> anyhow::Result<T> {
        bail!(
            "{} row {}: column {col}: {what} (got {:?})",
            self.table,
            self.number,
            self.value(col)
        )
    }

    fn text(&self, col: &str) -> anyhow::Result<Option<String>> {
        match self.value(col) {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            Value::Integer(n) => Ok(Some(n.to_string())),
            _ => self.fail(col, "expected text"),
        }
    }

    fn required_text(&self, col: &str) -> anyhow::Result<String> {
        match self.text(col)? {
            Some(s) => Ok(s),
            None => self.fail(col, "must not be empty"),
        }
    }

    fn uuid(&self, col: &str) -> anyhow::Result<Option<Uuid>> {
        match self.value(col) {
            Value::Null => Ok(None),
            Value::Text(s) if s.trim().is_empty() => Ok(None),
            Value::Text(s) => match Uuid::parse_str(s.trim()) {
                Ok(u) => Ok(Some(u)),
                Err(_) => self.fail(col, "expected a UUID"),
            },
            Value::Blob(b) => match Uuid::from_slice(b) {
                Ok(u) => Ok(Some(u)),
                Err(_) => self.fail(col, "expected a 16-byte UUID"),
            },
            _ => self.fail(col, "expected a UUID"),
        }
    }

    fn required_uuid(&self, col: &str) -> anyhow::Result<Uuid> {
        match self.uuid(col)? {
            Some(u) => Ok(u),
            None => self.fail(col, "must not be empty"),
        }
    }

    /// SQLite booleans: 0/1, or text from Python (`True`, `false`, `1`).
    fn boolean(&self, col: &str, absent: bool) -> anyhow::Result<bool> {
        match self.value(col) {
            Value::Null => Ok(absent),
            Value::Integer(n) => Ok(*n != 0),
            Value::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "t" | "yes" => Ok(true),
                "0" | "false" | "f" | "no" => Ok(false),
                _ => self.fail(col, "expected a boolean"),
            },
            _ => self.fail(col, "expected a boolean"),
        }
    }

    fn integer(&self, col: &str) -> anyhow::Result<Option<i64>> {
        match self.value(col) {
            Value::Null => Ok(None),
            Value::Integer(n) => Ok(Some(*n)),
            Value::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(*f as i64)),
            Value::Text(s) => match s.trim().parse() {
                Ok(n) => Ok(Some(n)),
                Err(_) => self.fail(col, "expected an integer"),
            },
            _ => self.fail(col, "expected an integer"),
        }
    }

    fn percent(&self, col: &str) -> anyhow::Result<Option<i32>> {
        Ok(self.integer(col)?.map(|n| n.clamp(0, 100) as i32))
    }

    fn real(&self, col: &str) -> anyhow::Result<Option<f64>> {
        match self.value(col) {
            Value::Null => Ok(None),
            Value::Integer(n) => Ok(Some(*n as f64)),
            Value::Real(f) => Ok(Some(*f)),
            Value::Text(s) => match s.trim().parse() {
                Ok(f) => Ok(Some(f)),
                Err(_) => self.fail(col, "expected a number"),
            },
            _ => self.fail(col, "expected a number"),
        }
    }

    fn time(&self, col: &str) -> anyhow::Result<Option<OffsetDateTime>> {
        match self.value(col) {
            Value::Null => Ok(None),
            Value::Text(s) if s.trim().is_empty() => Ok(None),
            Value::Text(s) => match parse_time(s) {
                Some(t) => Ok(Some(t)),
                None => self.fail(col, "expected a date and time"),
            },
            Value::Integer(n) => match OffsetDateTime::from_unix_timestamp(*n) {
                Ok(t) => Ok(Some(t)),
                Err(_) => self.fail(col, "expected a Unix time"),
            },
            Value::Real(f) => match OffsetDateTime::from_unix_timestamp_nanos((*f * 1e9) as i128) {
                Ok(t) => Ok(Some(t)),
                Err(_) => self.fail(col, "expected a Unix time"),
            },
            Value::Blob(_) => self.fail(col, "expected a date and time"),
        }
    }
}

/// The forms Python writes into SQLite: `2024-01-15 10:30:00[.123456]` (naive, UTC) or ISO 8601
/// with `T` and an offset or `Z`.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    let iso = if s.len() > 10 && s.as_bytes()[10] == b' ' {
        format!("{}T{}", &s[..10], &s[11..])
    } else {
        s.to_string()
    };
    if let Ok(t) = OffsetDateTime::parse(&iso, &Rfc3339) {
        return Some(t);
    }
    let naive = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if let Ok(t) = PrimitiveDateTime::parse(&iso, naive) {
        return Some(t.assume_utc());
    }
    // An offset without seconds or in `+0000` form, which RFC 3339 does not take.
    let offset = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]][offset_hour]:[offset_minute]"
    );
    OffsetDateTime::parse(&iso, offset).ok()
}

fn read_users(conn: &Connection) -> anyhow::Result<Vec<LegacyUser>> {
    let Some(table) = Table::open(conn, "users", false)? else {
        // v4 databases of CLI-only installs have tasks but no accounts.
        return Ok(Vec::new());
    };
    let cols = [
        "id",
        "username",
        "email",
        "hashed_password",
        "role",
        "is_active",
        "is_approved",
        "approved_by",
        "approved_at",
        "created_at",
        "last_login",
        "password_must_change",
    ];
    table
        .rows(conn, &cols)?
        .iter()
        .map(|r| {
            Ok(LegacyUser {
                id: r.required_uuid("id")?,
                username: r.required_text("username")?,
                email: r.required_text("email")?,
                hashed_password: r.required_text("hashed_password")?,
                role: r.text("role")?.unwrap_or_else(|| "user".into()),
                is_active: r.boolean("is_active", true)?,
                // v4 had no approval step: its users wait for an administrator, as the v5
                // migration guide asks ("Approve Existing Users").
                is_approved: r.boolean("is_approved", false)?,
                approved_by: r.uuid("approved_by")?,
                approved_at: r.time("approved_at")?,
                created_at: r.time("created_at")?,
                last_login: r.time("last_login")?,
                password_must_change: r.boolean("password_must_change", false)?,
            })
        })
        .collect()
}

fn read_tasks(conn: &Connection) -> anyhow::Result<Vec<LegacyTask>> {
    let table = Table::open(conn, "tasks", true)?.context("tasks table")?;
    let cols = [
        "task_id",
        "owner_id",
        "filename",
        "status",
        "file_size_bytes",
        "uploaded_at",
        "analyzed_at",
        "created_at",
        "total_packets",
        "health_score",
        "error_message",
        "progress_percent",
        "current_phase",
        "last_heartbeat",
    ];
    table
        .rows(conn, &cols)?
        .iter()
        .map(|r| {
            Ok(LegacyTask {
                task_id: r.required_uuid("task_id")?,
                owner_id: r.uuid("owner_id")?,
                filename: r.required_text("filename")?,
                status: r.required_text("status")?,
                file_size_bytes: r.integer("file_size_bytes")?,
                uploaded_at: r.time("uploaded_at")?,
                analyzed_at: r.time("analyzed_at")?,
                created_at: r.time("created_at")?,
                total_packets: r.integer("total_packets")?,
                health_score: r.real("health_score")?,
                error_message: r.text("error_message")?,
                progress_percent: r.percent("progress_percent")?,
                current_phase: r.text("current_phase")?,
                last_heartbeat: r.time("last_heartbeat")?,
            })
        })
        .collect()
}

fn read_snapshots(conn: &Connection) -> anyhow::Result<Vec<LegacySnapshot>> {
    let Some(table) = Table::open(conn, "progress_snapshots", false)? else {
        // Progress tracking came with a later v4 migration.
        return Ok(Vec::new());
    };
    let cols = [
        "task_id",
        "phase",
        "progress_percent",
        "packets_processed",
        "total_packets",
        "current_analyzer",
        "message",
        "timestamp",
    ];
    table
        .rows(conn, &cols)?
        .iter()
        .map(|r| {
            Ok(LegacySnapshot {
                task_id: r.required_uuid("task_id")?,
                phase: r.text("phase")?.unwrap_or_else(|| "unknown".into()),
                progress_percent: r.percent("progress_percent")?.unwrap_or(0),
                packets_processed: r.integer("packets_processed")?,
                total_packets: r.integer("total_packets")?,
                current_analyzer: r.text("current_analyzer")?,
                message: r.text("message")?,
                timestamp: match r.time("timestamp")? {
                    Some(t) => t,
                    None => return r.fail("timestamp", "must not be empty"),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_time_forms_are_read_as_utc() {
        let want = OffsetDateTime::from_unix_timestamp(1_705_314_600).unwrap();
        for s in [
            "2024-01-15 10:30:00",
            "2024-01-15T10:30:00",
            "2024-01-15T10:30:00Z",
            "2024-01-15 10:30:00+00:00",
            "2024-01-15T11:30:00+01:00",
        ] {
            assert_eq!(parse_time(s), Some(want), "{s}");
        }
        assert_eq!(
            parse_time("2024-01-15 10:30:00.250000"),
            Some(want + time::Duration::milliseconds(250))
        );
        assert_eq!(parse_time("15/01/2024"), None);
    }

    #[test]
    fn sqlite_urls_follow_sqlalchemy() {
        assert_eq!(
            sqlite_path("sqlite:///data/a.db").unwrap(),
            PathBuf::from("data/a.db")
        );
        assert_eq!(
            sqlite_path("sqlite:////data/a.db").unwrap(),
            PathBuf::from("/data/a.db")
        );
        assert_eq!(sqlite_path("a.db").unwrap(), PathBuf::from("a.db"));
        assert!(sqlite_path("sqlite://").is_err());
        assert!(sqlite_path("sqlite:///").is_err());
    }
}
