//! The one grammar of `timeout` and `memory_limit` values, read at compile
//! time: a number (whole or decimal), optional spaces, then a unit.
//!
//! ```text
//! "5s"  "5 s"  "1.5s"  "250 ms"  "2m"          durations: ns us µs ms s m h
//! "64 MiB"  "64MiB"  "0.5 GiB"  "4096"  4096   sizes: B KB KiB MB MiB GB GiB TB TiB
//! ```
//!
//! `KB`, `MB`, `GB` and `TB` are powers of 1000 (as the SI prefixes and
//! `kB` mean); `KiB`, `MiB`, `GiB` and `TiB` are powers of 1024. A size
//! without a unit is in bytes. A duration without a unit is an error that
//! names the units, since `5` could mean seconds or milliseconds.

/// A number as written: its whole part and its decimal digits.
struct Decimal<'a> {
    whole: &'a str,
    fraction: &'a str,
}

/// `"1.5 GiB"` → (`1`, `5`) and `"GiB"`; `None` if there is no number first.
fn split(text: &str) -> Option<(Decimal<'_>, &str)> {
    let text = text.trim();
    let whole_len = text.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &text[whole_len..];
    let (fraction, rest) = match rest.strip_prefix('.') {
        Some(after_dot) => {
            let len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            (&after_dot[..len], &after_dot[len..])
        }
        None => ("", rest),
    };
    if whole_len == 0 && fraction.is_empty() {
        return None;
    }
    let number = Decimal {
        whole: &text[..whole_len],
        fraction,
    };
    Some((number, rest.trim_start()))
}

/// Why a value was refused; `Display`ed as the compile error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a number and a unit at all.
    Malformed,
    /// A number, then a unit this grammar does not know.
    UnknownUnit(String),
    /// A duration written without its unit (`"5"`): the text to suggest.
    NoUnit(String),
    /// Does not fit in a `u64` of the base unit.
    TooLarge,
    /// Zero, which would make every call fail.
    Zero,
    /// Finer than the base unit (a fraction of a nanosecond or byte).
    NotWhole,
}

impl Decimal<'_> {
    /// `self × multiplier`, exactly, in the base unit.
    fn times(&self, multiplier: u64) -> Result<u64, Refused> {
        let multiplier = u128::from(multiplier);
        // Trailing zeros carry no value ("1.50"); beyond 24 digits no unit
        // here could still give a whole number, and `u128` would overflow.
        let fraction = self.fraction.trim_end_matches('0');
        if fraction.len() > 24 {
            return Err(Refused::NotWhole);
        }
        let whole: u128 = if self.whole.is_empty() {
            0
        } else {
            self.whole.parse().map_err(|_| Refused::TooLarge)?
        };
        let scale = 10u128.pow(u32::try_from(fraction.len()).unwrap_or(u32::MAX));
        let fraction_value: u128 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| Refused::Malformed)?
        };
        let fraction_scaled = fraction_value * multiplier;
        if fraction_scaled % scale != 0 {
            return Err(Refused::NotWhole);
        }
        let total = whole
            .checked_mul(multiplier)
            .and_then(|w| w.checked_add(fraction_scaled / scale))
            .ok_or(Refused::TooLarge)?;
        match u64::try_from(total) {
            Ok(0) => Err(Refused::Zero),
            Ok(n) => Ok(n),
            Err(_) => Err(Refused::TooLarge),
        }
    }
}

/// Nanoseconds in one of each duration unit.
fn duration_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        // The micro sign (U+00B5) and the Greek letter mu (U+03BC) look alike.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Bytes in one of each size unit.
fn size_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    })
}

/// `"250ms" | "5 s" | "1.5s" | "2m" | "1h"` → nanoseconds.
pub(crate) fn parse_duration(text: &str) -> Result<u64, Refused> {
    let (number, unit) = split(text).ok_or(Refused::Malformed)?;
    if unit.is_empty() {
        return Err(Refused::NoUnit(text.trim().to_owned()));
    }
    let per_unit = duration_unit(unit).ok_or_else(|| unknown(unit))?;
    number.times(per_unit)
}

/// `"64 MiB" | "0.5GiB" | "4096" | "500 MB"` → bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, Refused> {
    let (number, unit) = split(text).ok_or(Refused::Malformed)?;
    let per_unit = size_unit(unit).ok_or_else(|| unknown(unit))?;
    number.times(per_unit)
}

/// A unit that is not one; a second number (`"1.2.3s"`) is no unit at all.
fn unknown(unit: &str) -> Refused {
    if unit.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        Refused::Malformed
    } else {
        Refused::UnknownUnit(unit.to_owned())
    }
}

/// A whole number of bytes written as an integer literal (`4096`, `4096u64`).
pub(crate) fn bytes_from_digits(digits: &str) -> Result<u64, Refused> {
    Decimal {
        whole: digits,
        fraction: "",
    }
    .times(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_share_one_grammar() {
        for (text, nanos) in [
            ("250ms", 250_000_000),
            ("250 ms", 250_000_000),
            ("5s", 5_000_000_000),
            ("5 s", 5_000_000_000),
            (" 5  s ", 5_000_000_000),
            ("1.5s", 1_500_000_000),
            ("0.5 s", 500_000_000),
            (".5s", 500_000_000),
            ("1.50s", 1_500_000_000),
            ("2m", 120_000_000_000),
            ("1h", 3_600_000_000_000),
            ("1.25h", 4_500_000_000_000),
            ("7ns", 7),
            ("3us", 3_000),
            ("3µs", 3_000),
            ("3\u{3bc}s", 3_000),
            ("18446744073709551615ns", u64::MAX),
        ] {
            assert_eq!(parse_duration(text), Ok(nanos), "{text:?}");
        }
        for (text, refused) in [
            ("", Refused::Malformed),
            ("s", Refused::Malformed),
            ("5 sec", Refused::UnknownUnit("sec".to_owned())),
            ("5S", Refused::UnknownUnit("S".to_owned())),
            ("-1s", Refused::Malformed),
            ("1.2.3s", Refused::Malformed),
            ("5", Refused::NoUnit("5".to_owned())),
            ("1.5", Refused::NoUnit("1.5".to_owned())),
            ("0s", Refused::Zero),
            ("0.0ms", Refused::Zero),
            ("1.5ns", Refused::NotWhole),
            ("0.0000000001s", Refused::NotWhole),
            ("99999999999999h", Refused::TooLarge),
            ("18446744073709551616ns", Refused::TooLarge),
            (
                "999999999999999999999999999999999999999999s",
                Refused::TooLarge,
            ),
        ] {
            assert_eq!(parse_duration(text), Err(refused), "{text:?}");
        }
    }

    #[test]
    fn sizes_share_one_grammar() {
        for (text, bytes) in [
            ("64 MiB", 64 << 20),
            ("64MiB", 64 << 20),
            ("1 GiB", 1 << 30),
            ("0.5 GiB", 1 << 29),
            ("1.5GiB", 3 << 29),
            ("512 KiB", 512 << 10),
            ("1000 B", 1000),
            ("4096", 4096),
            ("2 KB", 2000),
            ("2 kB", 2000),
            ("500MB", 500_000_000),
            ("3 GB", 3_000_000_000),
            ("1.5 KB", 1500),
            ("2 TB", 2_000_000_000_000),
            ("2 TiB", 2 << 40),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text:?}");
        }
        for (text, refused) in [
            ("", Refused::Malformed),
            ("MiB", Refused::Malformed),
            ("64 mib", Refused::UnknownUnit("mib".to_owned())),
            ("64 Mb", Refused::UnknownUnit("Mb".to_owned())),
            ("-1", Refused::Malformed),
            ("0 B", Refused::Zero),
            ("0", Refused::Zero),
            ("1.5 B", Refused::NotWhole),
            ("1.5", Refused::NotWhole),
            ("99999999 TiB", Refused::TooLarge),
        ] {
            assert_eq!(parse_size(text), Err(refused), "{text:?}");
        }
    }

    #[test]
    fn integer_literals_are_bytes() {
        assert_eq!(bytes_from_digits("4096"), Ok(4096));
        assert_eq!(bytes_from_digits("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            bytes_from_digits("18446744073709551616"),
            Err(Refused::TooLarge)
        );
        assert_eq!(bytes_from_digits("0"), Err(Refused::Zero));
    }
}
