//! Class files as people have them, turned into text before `parse` reads it: UTF-8 (with or
//! without a BOM), UTF-16 with a BOM (Excel's "Unicode Text"), Windows-1252 (Excel's "CSV
//! (Comma delimited)" on a Western Windows), and spreadsheets read directly (`.xlsx`, and what
//! else calamine reads: `.xls`, `.xlsb`, `.ods`), whose first sheet with anything in it becomes
//! CSV. How the file was read is said on the preview. A U+FFFD (a character lost by an earlier
//! conversion) is never let through into a name.
use std::io::{Cursor, Read};

use calamine::Reader;

/// The text, and how it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    pub read_as: ReadAs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadAs {
    Utf8,
    Utf16,
    Windows1252,
    /// A spreadsheet's sheet (by name).
    Workbook(String),
}

impl std::fmt::Display for ReadAs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Utf8 => write!(f, "UTF-8 text"),
            Self::Utf16 => write!(f, "UTF-16 (Excel's Unicode Text)"),
            Self::Windows1252 => write!(f, "Windows-1252 (Excel's CSV)"),
            Self::Workbook(sheet) => write!(f, "a spreadsheet, sheet '{sheet}'"),
        }
    }
}

/// What to do instead, when a file cannot be read: each message says the steps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "this file is neither text nor a spreadsheet hubdesk can read. In Excel or LibreOffice: \
         File → Save As → \"CSV UTF-8 (Comma delimited) (*.csv)\" (LibreOffice: \"Text CSV\", \
         character set UTF-8), then upload that file"
    )]
    NotText,
    #[error(
        "this spreadsheet could not be read ({0}). Open it in Excel or LibreOffice, then File → \
         Save As → \"CSV UTF-8 (Comma delimited) (*.csv)\" or \"Excel Workbook (*.xlsx)\", and \
         upload that file"
    )]
    Workbook(String),
    #[error("this spreadsheet has no sheet with anything in it")]
    EmptyWorkbook,
    #[error(
        "this spreadsheet unpacks to more than {} MiB: save the class alone as CSV UTF-8 \
         (File → Save As → \"CSV UTF-8 (Comma delimited) (*.csv)\") and upload that",
        MAX_UNPACKED / (1024 * 1024)
    )]
    TooLarge,
    #[error("this file says it is UTF-16 but is not: save it again as \"CSV UTF-8\"")]
    BadUtf16,
    #[error(
        "line {0} contains '\u{FFFD}', a character already lost before the file reached hubdesk \
         (it was saved or converted with the wrong character set): correct the name in the \
         spreadsheet and save it as \"CSV UTF-8\", or retype it here"
    )]
    Replacement(u64),
}

/// A spreadsheet may unpack to this much (its XML); a class is far smaller.
const MAX_UNPACKED: u64 = 64 * 1024 * 1024;

pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    const ZIP: &[u8] = b"PK\x03\x04";
    const OLE: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
    let decoded = if bytes.starts_with(ZIP) || bytes.starts_with(OLE) {
        workbook(bytes)?
    } else if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        let text = std::str::from_utf8(rest).map_err(|_| DecodeError::NotText)?;
        text_of(text.to_string(), ReadAs::Utf8)?
    } else if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        let (encoding, bom) = encoding_rs::Encoding::for_bom(bytes).ok_or(DecodeError::BadUtf16)?;
        // Malformed input is refused, not replaced.
        let clean = encoding
            .decode_without_bom_handling_and_without_replacement(&bytes[bom..])
            .ok_or(DecodeError::BadUtf16)?;
        text_of(clean.into_owned(), ReadAs::Utf16)?
    } else if let Ok(text) = std::str::from_utf8(bytes) {
        text_of(text.to_string(), ReadAs::Utf8)?
    } else {
        // Not UTF-8: Excel's plain "CSV" on Windows writes the ANSI code page, Windows-1252 in
        // Western Europe and the Americas. A NUL or a control character means it is not text.
        if bytes.contains(&0) {
            return Err(DecodeError::NotText);
        }
        let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
        text_of(text.into_owned(), ReadAs::Windows1252)?
    };
    if let Some(line) = decoded.text.lines().position(|l| l.contains('\u{FFFD}')) {
        return Err(DecodeError::Replacement(line as u64 + 1));
    }
    Ok(decoded)
}

/// Text only if it has no control characters but tab and line breaks.
fn text_of(text: String, read_as: ReadAs) -> Result<Decoded, DecodeError> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    {
        return Err(DecodeError::NotText);
    }
    Ok(Decoded { text, read_as })
}

/// The first sheet with a non-empty cell, as CSV.
fn workbook(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if bytes.starts_with(b"PK") {
        unpacked_size_within_bounds(bytes)?;
    }
    let mut book = calamine::open_workbook_auto_from_rs(Cursor::new(bytes.to_vec()))
        .map_err(|e| DecodeError::Workbook(e.to_string()))?;
    for name in book.sheet_names() {
        let range = book
            .worksheet_range(&name)
            .map_err(|e| DecodeError::Workbook(e.to_string()))?;
        let rows: Vec<Vec<String>> = range
            .rows()
            .map(|row| {
                row.iter()
                    .map(|c| c.to_string().trim().to_string())
                    .collect()
            })
            .collect();
        if rows.iter().flatten().all(String::is_empty) {
            continue;
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        for row in rows {
            w.write_record(&row)
                .map_err(|e| DecodeError::Workbook(e.to_string()))?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| DecodeError::Workbook(e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| DecodeError::NotText)?;
        return text_of(text, ReadAs::Workbook(name));
    }
    Err(DecodeError::EmptyWorkbook)
}

/// A zip bomb is refused before calamine unpacks it: at most `MAX_UNPACKED` bytes come out of
/// all its entries (counted as they come, whatever the directory declares).
fn unpacked_size_within_bounds(bytes: &[u8]) -> Result<(), DecodeError> {
    let broken = |e: &dyn std::fmt::Display| DecodeError::Workbook(e.to_string());
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| broken(&e))?;
    let mut left = MAX_UNPACKED;
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| broken(&e))?;
        let read = std::io::copy(&mut Read::take(entry, left + 1), &mut std::io::sink())
            .map_err(|e| broken(&e))?;
        if read > left {
            return Err(DecodeError::TooLarge);
        }
        left -= read;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom() {
        let d = decode("display_name\nZoë\n".as_bytes()).unwrap();
        assert_eq!(
            (d.text.as_str(), d.read_as),
            ("display_name\nZoë\n", ReadAs::Utf8)
        );
        let d = decode("\u{feff}Zoë\n".as_bytes()).unwrap();
        assert_eq!(d.text, "Zoë\n");
    }

    #[test]
    fn windows_1252_is_decoded_and_said() {
        let d = decode(b"Jos\xe9 P\xe9rez\nZo\xeb \x93Z\x94\n").unwrap();
        assert_eq!(d.text, "José Pérez\nZoë \u{201c}Z\u{201d}\n");
        assert_eq!(d.read_as.to_string(), "Windows-1252 (Excel's CSV)");
    }

    #[test]
    fn utf16_with_a_bom_both_orders() {
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(
                "name\tcohort\r\nZoë\tb\r\n"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        let d = decode(&le).unwrap();
        assert_eq!(
            (d.text.as_str(), d.read_as),
            ("name\tcohort\r\nZoë\tb\r\n", ReadAs::Utf16)
        );
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("Zoë\n".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode(&be).unwrap().text, "Zoë\n");
        // A lone surrogate is refused, not replaced.
        let bad = [0xFF, 0xFE, 0x00, 0xD8, 0x41, 0x00];
        assert_eq!(decode(&bad), Err(DecodeError::BadUtf16));
    }

    #[test]
    fn a_replacement_character_never_becomes_a_name() {
        assert_eq!(
            decode("display_name\nJos\u{FFFD} P\u{FFFD}rez\n".as_bytes()),
            Err(DecodeError::Replacement(2))
        );
    }

    #[test]
    fn binary_is_not_text() {
        assert_eq!(decode(b"\x00\x01\x02abc\xff"), Err(DecodeError::NotText));
        assert_eq!(decode(b"\x89PNG\r\n\x1a\n\x00"), Err(DecodeError::NotText));
        // Not a workbook after all: a zip of something else.
        assert!(matches!(
            decode(b"PK\x03\x04garbage"),
            Err(DecodeError::Workbook(_))
        ));
    }
}
