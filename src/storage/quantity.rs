//! Kubernetes quantities (`10Gi`, `500M`, `1.5Gi`, `1e9`) as numbers, so sizes can be compared.
//!
//! k8s-openapi keeps a `Quantity` as its string; the operator needs only "is this volume smaller
//! than that size", so a quantity is read into thousandths of a unit (the smallest suffix a size
//! can sensibly carry is `m`), rounded up as the API server rounds a quantity's value up.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A non-negative quantity in thousandths of its unit (bytes, for a storage size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(u128);

impl Amount {
    /// The amount in whole units, rounded up.
    pub fn units(self) -> u128 {
        self.0.div_ceil(1000)
    }
}

/// Reads a quantity; `None` when it is not a valid non-negative Kubernetes quantity.
pub fn parse(quantity: &Quantity) -> Option<Amount> {
    parse_str(quantity.0.trim())
}

fn parse_str(text: &str) -> Option<Amount> {
    let text = text.strip_prefix('+').unwrap_or(text);
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    // The number as an integer mantissa times 10^-scale.
    let digits = format!("{whole}{fraction}");
    let mantissa: u128 = digits.parse().ok()?;
    let scale = i32::try_from(fraction.len()).ok()?;

    let (binary_power, decimal_power): (u32, i32) = match suffix {
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "" => (0, 0),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..].parse().ok()?;
            (0, power)
        }
        _ => return None,
    };
    // Thousandths: one more factor of 10^3.
    let power = decimal_power + 3 - scale;
    let value = mantissa.checked_mul(1u128.checked_shl(binary_power)?)?;
    let thousandths = if power >= 0 {
        value.checked_mul(10u128.checked_pow(u32::try_from(power).ok()?)?)?
    } else {
        let divisor = 10u128.checked_pow(u32::try_from(-power).ok()?)?;
        value.div_ceil(divisor)
    };
    Some(Amount(thousandths))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> Option<u128> {
        parse(&Quantity(text.into())).map(Amount::units)
    }

    #[test]
    fn binary_and_decimal_suffixes_scale_the_number() {
        assert_eq!(bytes("256Mi"), Some(256 << 20));
        assert_eq!(bytes("1Gi"), Some(1 << 30));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("10k"), Some(10_000));
        assert_eq!(bytes("2Ti"), Some(2 << 40));
        assert_eq!(bytes("1073741824"), Some(1 << 30));
    }

    #[test]
    fn fractions_and_exponents_are_exact() {
        assert_eq!(bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(bytes("0.5Mi"), Some(1 << 19));
        assert_eq!(bytes("1e9"), Some(1_000_000_000));
        assert_eq!(bytes("12E-1"), Some(2), "1.2 rounds up to 2");
        assert_eq!(bytes("1500m"), Some(2), "1.5 rounds up to 2");
    }

    #[test]
    fn the_same_size_written_differently_compares_equal() {
        let a = parse(&Quantity("1Gi".into())).unwrap();
        let b = parse(&Quantity("1024Mi".into())).unwrap();
        let c = parse(&Quantity("1073741824".into())).unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert!(parse(&Quantity("1G".into())).unwrap() < a);
    }

    #[test]
    fn malformed_or_negative_quantities_are_refused() {
        for bad in [
            "", "Gi", "-1Gi", "1.2.3", "1 Gi", "1gi", "1Qi", "1e", "1.Gi5", ".",
        ] {
            assert_eq!(bytes(bad), None, "{bad:?}");
        }
    }
}
