//! Class import from CSV, pasted text or a spreadsheet. `decode` turns a file into text (and
//! says how it read it); parsing is pure (no database); `plan` then resolves usernames against
//! the database (the API, one student), and `existing::plan_against_roster` also finds who is
//! already on the roster (the import page). Nothing is written until the whole import is valid.
pub mod decode;
pub mod existing;

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sqlx::PgConnection;

use super::generate;
use crate::{
    db,
    domain::{Cohort, DisplayName, Username},
};

pub const MAX_ROWS: usize = 2_000;
pub const MAX_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

impl RowError {
    fn new(line: u64, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// A parsed, valid row (username still optional).
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: u64,
    pub display_name: DisplayName,
    pub username: Option<Username>,
    pub cohort: Option<Cohort>,
}

/// A row ready to be created.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStudent {
    pub line: u64,
    pub display_name: DisplayName,
    pub username: Username,
    pub cohort: Option<Cohort>,
    pub generated_username: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Column {
    DisplayName,
    /// First and last name columns are joined into the display name.
    FirstName,
    LastName,
    Username,
    Cohort,
    /// Read and left alone: the extra columns of our own export (`status`, `created_at`), so
    /// an exported roster imports again.
    Ignored(&'static str),
}

fn column(name: &str) -> Option<Column> {
    let n = name.trim().to_lowercase().replace([' ', '-', '.'], "_");
    match n.as_str() {
        "display_name" | "name" | "full_name" | "student" | "student_name" => {
            Some(Column::DisplayName)
        }
        "first_name" | "firstname" | "first" | "given_name" | "givenname" | "given_names"
        | "forename" | "first_names" | "prénom" | "prenom" | "vorname" | "nombre" => {
            Some(Column::FirstName)
        }
        "last_name" | "lastname" | "last" | "surname" | "family_name" | "familyname" | "nom"
        | "nachname" | "apellido" | "apellidos" => Some(Column::LastName),
        "username" | "user" | "login" | "user_name" => Some(Column::Username),
        "cohort" | "group" | "class" | "team" => Some(Column::Cohort),
        "status" => Some(Column::Ignored("status")),
        "created_at" => Some(Column::Ignored("created_at")),
        _ => None,
    }
}

/// Parses CSV (comma, semicolon or tab separated; header row optional for a plain list of
/// names). Every problem is reported with its line number.
pub fn parse(input: &[u8]) -> Result<Vec<ImportRow>, Vec<RowError>> {
    if input.len() > MAX_BYTES {
        return Err(vec![RowError::new(
            0,
            format!("the import is larger than {} KiB", MAX_BYTES / 1024),
        )]);
    }
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    // Browsers submit textareas with CRLF; the csv reader's line numbers assume LF.
    let normalised = normalise_newlines(input);
    let input = normalised.as_slice();
    let first_line = input.split(|b| *b == b'\n').next().unwrap_or_default();
    let delimiter = [b'\t', b';', b',']
        .into_iter()
        .max_by_key(|d| (first_line.iter().filter(|b| *b == d).count(), *d == b','))
        .filter(|d| first_line.contains(d))
        .unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(input);

    let mut errors = Vec::new();
    let mut rows = Vec::new();
    let mut columns: Option<Vec<Column>> = None;
    let mut seen_first = false;
    for record in reader.byte_records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(RowError::new(line, format!("unreadable CSV: {e}")));
                break;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let cells: Vec<String> = match record
            .iter()
            .map(|c| std::str::from_utf8(c).map(str::to_string))
            .collect()
        {
            Ok(c) => c,
            Err(_) => {
                errors.push(RowError::new(
                    line,
                    "not valid UTF-8 text (save the file as CSV UTF-8)",
                ));
                continue;
            }
        };
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if !seen_first {
            seen_first = true;
            let looks_like_header = cells.iter().any(|c| column(c).is_some());
            if looks_like_header {
                match header(&cells, line) {
                    Ok(cols) => columns = Some(cols),
                    Err(e) => {
                        errors.extend(e);
                        return Err(errors);
                    }
                }
                continue;
            }
            if cells.len() > 1 {
                errors.push(RowError::new(
                    line,
                    "the first line must be a header naming the columns (display_name or first \
                     name and last name, username, cohort); without a header, give one name per line",
                ));
                return Err(errors);
            }
            columns = Some(vec![Column::DisplayName]);
        }
        let cols = columns.as_ref().expect("set on the first row");
        if cells.len() > cols.len() && cells[cols.len()..].iter().any(|c| !c.trim().is_empty()) {
            errors.push(RowError::new(
                line,
                format!("{} values but only {} columns", cells.len(), cols.len()),
            ));
            continue;
        }
        match row(cols, &cells, line) {
            Ok(r) => rows.push(r),
            Err(e) => errors.extend(e),
        }
        if rows.len() + errors.len() > MAX_ROWS {
            errors.push(RowError::new(
                line,
                format!("an import holds at most {MAX_ROWS} students"),
            ));
            break;
        }
    }
    errors.extend(duplicate_usernames(&rows));
    errors.sort_by_key(|e| e.line);
    if rows.is_empty() && errors.is_empty() {
        errors.push(RowError::new(
            0,
            "no students found: give one name per line, or a CSV with a display_name column",
        ));
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

fn normalise_newlines(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter().peekable();
    while let Some(&b) = bytes.next() {
        if b == b'\r' {
            if bytes.peek() == Some(&&b'\n') {
                bytes.next();
            }
            out.push(b'\n');
        } else {
            out.push(b);
        }
    }
    out
}

fn header(cells: &[String], line: u64) -> Result<Vec<Column>, Vec<RowError>> {
    let mut cols = Vec::new();
    let mut errors = Vec::new();
    for cell in cells {
        match column(cell) {
            Some(c) if cols.contains(&c) => errors.push(RowError::new(
                line,
                format!("column '{}' appears twice", cell.trim()),
            )),
            Some(c) => cols.push(c),
            None if cell.trim().is_empty() => {
                errors.push(RowError::new(line, "a column has no name"))
            }
            None => errors.push(RowError::new(
                line,
                format!(
                    "unknown column '{}' (known: display_name, first name, last name, username, \
                     cohort)",
                    cell.trim()
                ),
            )),
        }
    }
    let named = [Column::DisplayName, Column::FirstName, Column::LastName];
    if !cols.iter().any(|c| named.contains(c)) && errors.is_empty() {
        errors.push(RowError::new(
            line,
            "the header needs a display_name column, or first name and last name columns",
        ));
    }
    if errors.is_empty() {
        Ok(cols)
    } else {
        Err(errors)
    }
}

fn row(cols: &[Column], cells: &[String], line: u64) -> Result<ImportRow, Vec<RowError>> {
    let get = |want: Column| {
        cols.iter()
            .position(|c| *c == want)
            .and_then(|i| cells.get(i))
            .map(String::as_str)
            .unwrap_or("")
    };
    let mut errors = Vec::new();
    let display_name = DisplayName::parse(&name_of(cols, &get))
        .map_err(|e| errors.push(RowError::new(line, format!("display name: {e}"))))
        .ok();
    let raw_username = get(Column::Username).trim();
    let username = if raw_username.is_empty() {
        None
    } else {
        // Case is forgiven here: "Ada" and "ada" are the same person, and a duplicate.
        Username::parse(&raw_username.to_ascii_lowercase())
            .map_err(|e| {
                errors.push(RowError::new(
                    line,
                    format!("username '{raw_username}': {e}"),
                ))
            })
            .ok()
    };
    let cohort = Cohort::parse_optional(get(Column::Cohort))
        .map_err(|e| errors.push(RowError::new(line, e.to_string())))
        .ok()
        .flatten();
    match (errors.is_empty(), display_name) {
        (true, Some(display_name)) => Ok(ImportRow {
            line,
            display_name,
            username,
            cohort,
        }),
        _ => Err(errors),
    }
}

/// The display name of a row: its display_name cell, else first and last name joined ("Name"
/// and "Surname" columns read as first and last).
fn name_of<'a>(cols: &[Column], get: &impl Fn(Column) -> &'a str) -> String {
    let display = get(Column::DisplayName).trim();
    let has = |c| cols.contains(&c);
    if !display.is_empty() && (has(Column::FirstName) || !has(Column::LastName)) {
        return display.to_string();
    }
    let first = if has(Column::FirstName) {
        get(Column::FirstName).trim()
    } else {
        display
    };
    [first, get(Column::LastName).trim()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Given usernames must be unique within the import.
fn duplicate_usernames(rows: &[ImportRow]) -> Vec<RowError> {
    let mut first_line: HashMap<&str, u64> = HashMap::new();
    let mut errors = Vec::new();
    for r in rows {
        if let Some(u) = &r.username {
            match first_line.get(u.as_str()) {
                Some(prev) => errors.push(RowError::new(
                    r.line,
                    format!("username '{u}' is also on line {prev}"),
                )),
                None => {
                    first_line.insert(u.as_str(), r.line);
                }
            }
        }
    }
    errors
}

/// Resolves usernames: given ones must be unique in the file and free in the database;
/// missing ones are generated from the display name.
pub async fn plan(
    conn: &mut PgConnection,
    rows: Vec<ImportRow>,
) -> Result<Vec<PlannedStudent>, Vec<RowError>> {
    let mut errors = duplicate_usernames(&rows);
    let first_line: HashMap<String, u64> = rows
        .iter()
        .rev()
        .filter_map(|r| r.username.as_ref().map(|u| (u.to_string(), r.line)))
        .collect();
    let given: Vec<String> = first_line.keys().cloned().collect();
    let existing = db::users::existing_usernames(conn, &given)
        .await
        .map_err(|e| vec![RowError::new(0, format!("database: {e}"))])?;
    for name in existing {
        errors.push(RowError::new(
            first_line[&name],
            format!("username '{name}' already exists"),
        ));
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(errors);
    }

    let taken: HashSet<String> = given.into_iter().collect();
    let rows = rows.into_iter().map(|r| (r, None)).collect();
    assign_usernames(conn, rows, taken).await
}

/// Gives every row its username: the one it has, else one generated from `base` (or from the
/// display name) that is neither in `taken`, nor in the database, nor given to an earlier row.
async fn assign_usernames(
    conn: &mut PgConnection,
    rows: Vec<(ImportRow, Option<String>)>,
    mut taken: HashSet<String>,
) -> Result<Vec<PlannedStudent>, Vec<RowError>> {
    let mut loaded_prefixes: HashSet<String> = HashSet::new();
    let mut planned = Vec::with_capacity(rows.len());
    for (r, base) in rows {
        let (username, generated) = match r.username {
            Some(u) => (u, false),
            None => {
                let base = base.unwrap_or_else(|| generate::username_base(r.display_name.as_str()));
                if loaded_prefixes.insert(base.clone()) {
                    let names = db::users::usernames_with_prefix(conn, &base)
                        .await
                        .map_err(|e| vec![RowError::new(0, format!("database: {e}"))])?;
                    taken.extend(names);
                }
                (generate::unique_username(&base, &taken), true)
            }
        };
        taken.insert(username.to_string());
        planned.push(PlannedStudent {
            line: r.line,
            display_name: r.display_name,
            username,
            cohort: r.cohort,
            generated_username: generated,
        });
    }
    Ok(planned)
}

/// The plan as CSV, carried by the preview page's confirm form (usernames now fixed).
pub fn to_csv(planned: &[PlannedStudent]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["display_name", "username", "cohort"]);
    for p in planned {
        let _ = w.write_record([
            p.display_name.as_str(),
            p.username.as_str(),
            p.cohort.as_ref().map(Cohort::as_str).unwrap_or(""),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(r: Result<Vec<ImportRow>, Vec<RowError>>) -> Vec<(u64, String)> {
        r.expect_err("expected errors")
            .into_iter()
            .map(|e| (e.line, e.message))
            .collect()
    }

    #[test]
    fn plain_list_of_names() {
        let rows = parse("Ada Lovelace\nGrace Hopper\n\n".as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].display_name.as_str(), "Grace Hopper");
        assert_eq!(rows[1].line, 2);
    }

    #[test]
    fn header_with_all_columns_and_bom() {
        let rows = parse(
            "\u{feff}Display Name,Username,Cohort\nAda Lovelace,ada,week-1\n\"Hopper, Grace\",,\n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(rows[0].username.as_ref().unwrap().as_str(), "ada");
        assert_eq!(rows[0].cohort.as_ref().unwrap().as_str(), "week-1");
        assert_eq!(rows[1].display_name.as_str(), "Hopper, Grace");
        assert!(rows[1].username.is_none());
    }

    #[test]
    fn tab_separated_paste_from_a_spreadsheet() {
        let rows = parse("name\tcohort\nAda Lovelace\tblue\n".as_bytes()).unwrap();
        assert_eq!(rows[0].cohort.as_ref().unwrap().as_str(), "blue");
    }

    #[test]
    fn unknown_column_is_reported_on_line_1() {
        let errs = lines(parse(
            "display_name,email\nAda,ada@example.org\n".as_bytes(),
        ));
        assert_eq!(errs[0].0, 1);
        assert!(errs[0].1.contains("unknown column 'email'"));
    }

    #[test]
    fn invalid_username_and_long_fields_report_their_lines() {
        let input = format!(
            "display_name,username,cohort\nAda,ada,\nBad,../etc,\nLong,{},\n{},,\nC,cc,{}\n",
            "a".repeat(33),
            "n".repeat(101),
            "c".repeat(65)
        );
        let errs = lines(parse(input.as_bytes()));
        let got: Vec<u64> = errs.iter().map(|e| e.0).collect();
        assert_eq!(got, vec![3, 4, 5, 6]);
    }

    #[test]
    fn non_utf8_is_reported_with_its_line() {
        let mut input = b"display_name\nAda\n".to_vec();
        input.extend_from_slice(b"Jos\xe9 N\xfa\xf1ez\n");
        let errs = lines(parse(&input));
        assert_eq!(
            errs,
            vec![(
                3,
                "not valid UTF-8 text (save the file as CSV UTF-8)".to_string()
            )]
        );
    }

    #[test]
    fn headerless_multi_column_needs_a_header() {
        let errs = lines(parse("Ada,ada\n".as_bytes()));
        assert_eq!(errs[0].0, 1);
    }

    #[test]
    fn too_many_values() {
        let errs = lines(parse("display_name\nAda,extra\n".as_bytes()));
        assert_eq!(errs[0].0, 2);
    }

    #[test]
    fn empty_input() {
        assert_eq!(lines(parse(b"\n\n")).len(), 1);
    }

    #[test]
    fn case_variants_of_a_username_are_duplicates() {
        let errs = lines(parse(
            "display_name,username\nAda,Ada\nAda Two,ADA\n".as_bytes(),
        ));
        assert_eq!(
            errs,
            vec![(3, "username 'ada' is also on line 2".to_string())]
        );
    }
}

#[cfg(test)]
mod crlf_tests {
    use super::*;

    #[test]
    fn browser_textareas_send_crlf_and_line_numbers_still_count_the_header() {
        let rows = parse(b"display_name,cohort\r\nJose,X\r\nAda,Y\rZoe,Z\r\n").unwrap();
        assert_eq!(
            rows.iter().map(|r| r.line).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert_eq!(rows[2].display_name.as_str(), "Zoe");
    }
}

/// Every row whose cohort is outside a counselor's `reach`, as row errors (a counselor imports
/// into their own cohorts only; a row without a cohort needs every cohort).
pub fn out_of_reach(rows: &[ImportRow], reach: &crate::domain::Reach) -> Result<(), Vec<RowError>> {
    let errors: Vec<RowError> = rows
        .iter()
        .filter_map(|r| {
            let why = reach
                .check_cohort(r.cohort.as_ref().map(|c| c.as_str()))
                .err()?;
            Some(RowError::new(r.line, crate::domain::sentence(&why.0)))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
