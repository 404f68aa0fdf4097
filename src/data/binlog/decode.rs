//! A row image of the binlog as the tool's rows are: each value exactly as a `SELECT` of the
//! same row returns it in the binary protocol, so that a row brought back from the binlog is
//! written, hashed and compared like a row read from a restored copy.
//!
//! The binlog alone does not say enough: an integer comes without its signedness (unless the
//! server logs full row metadata), an ENUM or SET as its number, a string in its column's
//! character set, YEAR 0 as 1900, a TIMESTAMP as seconds since the epoch. So every value is read
//! against the column's definition from `information_schema.COLUMNS`, never guessed.

use mysql_async::binlog::value::BinlogValue;
use mysql_async::Value;

use crate::ports::Row;

/// A column as the table defines it, in the table's order (generated columns included: the
/// binlog carries them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    /// `information_schema.COLUMNS.COLUMN_TYPE`: `bigint(20) unsigned`, `enum('a','b')`.
    pub column_type: String,
    /// `CHARACTER_SET_NAME`; none for numbers, dates and binary strings.
    pub charset: Option<String>,
    /// A generated column: in the image, but never written.
    pub generated: bool,
}

/// The values of a row image for the table's written columns (the generated ones left out), in
/// the order of [`crate::ports::TableSchema::columns`].
pub fn decode_row(values: Vec<Option<BinlogValue<'_>>>, defs: &[ColumnDef]) -> Result<Row, String> {
    if values.len() != defs.len() {
        return Err(format!(
            "the binlog's row has {} columns and the table {}: the table's definition changed since, or the server \
             logs partial row images (binlog_row_image is not FULL)",
            values.len(),
            defs.len()
        ));
    }
    let mut row = Vec::with_capacity(defs.len());
    for (value, def) in values.into_iter().zip(defs) {
        if def.generated {
            continue;
        }
        let value = value.ok_or_else(|| {
            format!(
                "the binlog's row lacks column `{}`: the server logs partial row images (binlog_row_image is not FULL)",
                def.name
            )
        })?;
        row.push(decode_value(value, def).map_err(|e| format!("column `{}`: {e}", def.name))?);
    }
    Ok(row)
}

fn decode_value(value: BinlogValue<'_>, def: &ColumnDef) -> Result<Value, String> {
    let t = def.column_type.to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    let unsigned = t.contains("unsigned");
    let v = match value {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(j) => {
            // MySQL's binary JSON, as the text a SELECT returns.
            let json = serde_json::Value::try_from(j).map_err(|e| format!("JSON: {e}"))?;
            return Ok(Value::Bytes(json.to_string().into_bytes()));
        }
        BinlogValue::JsonDiff(_) => {
            return Err("a partial JSON update (binlog_row_value_options = PARTIAL_JSON) has no before-image".into())
        }
    };
    if v == Value::NULL {
        return Ok(Value::NULL);
    }
    Ok(match base {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => integer(v, base, unsigned)?,
        "year" => match v {
            // The binlog writes YEAR as years after 1900, so YEAR 0000 reads as 1900, which no
            // YEAR column can hold.
            Value::Bytes(b) => match std::str::from_utf8(&b).ok().and_then(|s| s.parse::<i64>().ok()) {
                Some(1900) => Value::Int(0),
                Some(y) => Value::Int(y),
                None => return Err("YEAR is not a number".into()),
            },
            Value::Int(y) => Value::Int(y),
            other => return Err(format!("YEAR as {other:?}")),
        },
        "timestamp" => timestamp(v)?,
        "time" => match v {
            Value::Time(neg, d, h, m, s, us) => Value::Time(neg, d + u32::from(h) / 24, h % 24, m, s, us),
            other => other,
        },
        "enum" => match v {
            Value::Int(i) => {
                let labels = labels(&def.column_type);
                let label = match i {
                    0 => String::new(),
                    i => labels
                        .get(i as usize - 1)
                        .cloned()
                        .ok_or_else(|| format!("ENUM number {i} past its {} values", labels.len()))?,
                };
                Value::Bytes(label.into_bytes())
            }
            other => other,
        },
        "set" => match v {
            Value::Bytes(mask) => {
                let labels = labels(&def.column_type);
                let chosen: Vec<&str> = labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
                    .map(|(_, l)| l.as_str())
                    .collect();
                Value::Bytes(chosen.join(",").into_bytes())
            }
            other => other,
        },
        // The binlog leaves out the zero bytes that pad a BINARY value to its length; a SELECT
        // returns them.
        "binary" => match v {
            Value::Bytes(mut b) => {
                let n: usize = t
                    .split_once('(')
                    .and_then(|(_, r)| r.split(')').next())
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(1);
                if b.len() < n {
                    b.resize(n, 0);
                }
                Value::Bytes(b)
            }
            other => other,
        },
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "json" => match v {
            Value::Bytes(b) => Value::Bytes(to_utf8(b, def.charset.as_deref())?),
            other => other,
        },
        _ => v,
    })
}

/// An integer with the signedness and width of its column.
fn integer(v: Value, base: &str, unsigned: bool) -> Result<Value, String> {
    let bits = match base {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        _ => 64,
    };
    let raw: u64 = match v {
        Value::Int(i) => i as u64,
        Value::UInt(u) => u,
        other => return Err(format!("an integer as {other:?}")),
    };
    let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let raw = raw & mask;
    Ok(if unsigned {
        // As a SELECT returns them: a value past the signed range as unsigned, any other as a
        // plain integer.
        match i64::try_from(raw) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(raw),
        }
    } else {
        let shift = 64 - bits;
        Value::Int(((raw << shift) as i64) >> shift)
    })
}

/// TIMESTAMP: seconds (and microseconds) since the epoch, as the UTC date and time a session
/// with `time_zone = '+00:00'` reads (every session of the tool has it).
fn timestamp(v: Value) -> Result<Value, String> {
    let text = match v {
        Value::Bytes(b) => String::from_utf8(b).map_err(|_| "TIMESTAMP is not text".to_string())?,
        Value::Int(i) => i.to_string(),
        other => return Err(format!("TIMESTAMP as {other:?}")),
    };
    let (secs, micros) = match text.split_once('.') {
        Some((s, f)) => (s, f.parse::<u32>().map_err(|_| "TIMESTAMP fraction".to_string())?),
        None => (text.as_str(), 0),
    };
    let secs: i64 = secs.parse().map_err(|_| "TIMESTAMP seconds".to_string())?;
    if secs == 0 && micros == 0 {
        // The zero TIMESTAMP.
        return Ok(Value::Date(0, 0, 0, 0, 0, 0, 0));
    }
    let t = chrono::DateTime::from_timestamp(secs, micros * 1000).ok_or("TIMESTAMP out of range")?;
    use chrono::{Datelike, Timelike};
    Ok(Value::Date(
        t.year() as u16,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        t.timestamp_subsec_micros(),
    ))
}

/// The values of `enum('a','b')` or `set('x','y')`, in order (quotes doubled inside).
fn labels(column_type: &str) -> Vec<String> {
    let inner = column_type
        .split_once('(')
        .map(|(_, rest)| rest.rsplit_once(')').map(|(i, _)| i).unwrap_or(rest))
        .unwrap_or("");
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    label.push('\'');
                    continue;
                }
                break;
            }
            if c == '\\' {
                if let Some(n) = chars.next() {
                    label.push(n);
                }
                continue;
            }
            label.push(c);
        }
        out.push(label);
    }
    out
}

/// A string in its column's character set, as the utf8mb4 a session of the tool reads.
fn to_utf8(bytes: Vec<u8>, charset: Option<&str>) -> Result<Vec<u8>, String> {
    match charset.map(str::to_ascii_lowercase).as_deref() {
        None | Some("utf8mb4") | Some("utf8mb3") | Some("utf8") | Some("binary") => Ok(bytes),
        Some("ascii") => Ok(bytes),
        // MySQL's latin1 is Windows-1252; the bytes 0x80-0x9f that 1252 leaves undefined map to
        // the C1 controls, as MySQL maps them.
        Some("latin1") => Ok(bytes.iter().map(|&b| cp1252(b)).collect::<String>().into_bytes()),
        Some(other) => Err(format!(
            "character set {other} is not read from the binlog by this tool: use the instance restore"
        )),
    }
}

fn cp1252(b: u8) -> char {
    const HIGH: [u32; 32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,
        0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
        0x0153, 0x9D, 0x017E, 0x0178,
    ];
    match b {
        0x80..=0x9f => char::from_u32(HIGH[usize::from(b - 0x80)]).unwrap_or('\u{fffd}'),
        _ => char::from(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(column_type: &str) -> ColumnDef {
        ColumnDef {
            name: "c".into(),
            column_type: column_type.into(),
            charset: None,
            generated: false,
        }
    }

    fn one(v: Value, column_type: &str) -> Value {
        decode_value(BinlogValue::Value(v), &def(column_type)).unwrap()
    }

    #[test]
    fn integers_take_the_signedness_and_width_of_their_column() {
        assert_eq!(one(Value::Int(-1), "bigint(20) unsigned"), Value::UInt(u64::MAX));
        assert_eq!(one(Value::Int(-1), "smallint(5) unsigned"), Value::Int(65535));
        assert_eq!(one(Value::Int(0xff_ffff), "mediumint(9)"), Value::Int(-1));
        assert_eq!(one(Value::Int(-128), "tinyint(4)"), Value::Int(-128));
        assert_eq!(one(Value::Int(i64::MIN), "bigint(20)"), Value::Int(i64::MIN));
    }

    #[test]
    fn enum_set_year_and_timestamp_read_as_a_select_returns_them() {
        assert_eq!(one(Value::Int(3), "enum('a','b','c')"), Value::Bytes(b"c".to_vec()));
        assert_eq!(one(Value::Int(0), "enum('a','b')"), Value::Bytes(vec![]));
        assert_eq!(
            one(Value::Bytes(vec![0b101]), "set('x','y','z')"),
            Value::Bytes(b"x,z".to_vec())
        );
        assert_eq!(one(Value::Bytes(vec![0]), "set('x','y')"), Value::Bytes(vec![]));
        assert_eq!(one(Value::Bytes(b"1900".to_vec()), "year(4)"), Value::Int(0));
        assert_eq!(one(Value::Bytes(b"2155".to_vec()), "year(4)"), Value::Int(2155));
        assert_eq!(
            one(Value::Bytes(b"2147483647.999999".to_vec()), "timestamp(6)"),
            Value::Date(2038, 1, 19, 3, 14, 7, 999_999)
        );
        assert_eq!(
            one(Value::Bytes(b"0".to_vec()), "timestamp"),
            Value::Date(0, 0, 0, 0, 0, 0, 0)
        );
    }

    #[test]
    fn binary_gets_back_its_zero_padding() {
        assert_eq!(
            one(Value::Bytes(vec![0, 0xff]), "binary(4)"),
            Value::Bytes(vec![0, 0xff, 0, 0])
        );
        assert_eq!(one(Value::Bytes(vec![]), "binary(8)"), Value::Bytes(vec![0; 8]));
    }

    #[test]
    fn labels_keep_quotes_and_commas() {
        assert_eq!(labels("enum('it''s','a,b','')"), vec!["it's", "a,b", ""]);
    }

    #[test]
    fn latin1_is_windows_1252() {
        assert_eq!(
            to_utf8(vec![0xe7, 0x80, 0x41], Some("latin1")).unwrap(),
            "ç€A".as_bytes()
        );
        assert!(to_utf8(vec![0x41], Some("sjis")).is_err());
    }

    #[test]
    fn a_row_leaves_generated_columns_out_and_refuses_a_partial_image() {
        let mut g = def("int(11)");
        g.generated = true;
        let defs = vec![def("int(11)"), g];
        let row = decode_row(
            vec![
                Some(BinlogValue::Value(Value::Int(7))),
                Some(BinlogValue::Value(Value::Int(14))),
            ],
            &defs,
        )
        .unwrap();
        assert_eq!(row, vec![Value::Int(7)]);
        assert!(decode_row(vec![None, None], &defs)
            .unwrap_err()
            .contains("binlog_row_image"));
        assert!(decode_row(vec![None], &defs)
            .unwrap_err()
            .contains("definition changed"));
    }
}
