//! A small ASCII bar chart of a price series, for `gpuspot pools history`.
//!
//! Prices come in as micro-units; the series is squeezed into at most `width` columns (each
//! column the mean of its bucket) and `height` rows, labelled with the top and bottom price.

use gpuspot_common::Money;

/// The chart as lines (empty when there are no prices).
pub fn render(prices: &[i64], width: usize, height: usize) -> Vec<String> {
    if prices.is_empty() || width == 0 || height == 0 {
        return Vec::new();
    }
    let columns = squeeze(prices, width);
    let low = columns.iter().copied().min().unwrap_or(0);
    let high = columns.iter().copied().max().unwrap_or(0);
    let levels: Vec<usize> = columns.iter().map(|&price| level(price, low, high, height)).collect();
    let top = Money::from_micros(high).to_string();
    let bottom = Money::from_micros(low).to_string();
    let label_width = top.len().max(bottom.len());
    (0..height)
        .rev()
        .map(|row| {
            let label = match row {
                r if r + 1 == height => top.as_str(),
                0 => bottom.as_str(),
                _ => "",
            };
            let bars: String = levels.iter().map(|&l| if l >= row { '#' } else { ' ' }).collect();
            format!("{label:>label_width$} |{}", bars.trim_end())
        })
        .collect()
}

/// At most `width` values: each the mean of one contiguous bucket of `prices`.
fn squeeze(prices: &[i64], width: usize) -> Vec<i64> {
    if prices.len() <= width {
        return prices.to_vec();
    }
    (0..width)
        .map(|i| {
            let start = i * prices.len() / width;
            let end = ((i + 1) * prices.len() / width).max(start + 1);
            let bucket = &prices[start..end];
            let sum: i128 = bucket.iter().map(|&p| i128::from(p)).sum();
            (sum / bucket.len() as i128) as i64
        })
        .collect()
}

/// The row (0 = bottom) a price reaches; a flat series sits on the bottom row.
fn level(price: i64, low: i64, high: i64, height: usize) -> usize {
    if high <= low {
        return 0;
    }
    let span = i128::from(high - low);
    let scaled = i128::from(price - low) * (height as i128 - 1);
    ((scaled + span / 2) / span) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rising_series_draws_a_staircase() {
        let lines = render(&[100_000, 200_000, 300_000], 10, 3);
        assert_eq!(lines, vec!["0.30 |  #", "     | ##", "0.10 |###"]);
    }

    #[test]
    fn long_series_is_squeezed_and_flat_series_is_one_row() {
        let prices: Vec<i64> = (0..100).map(|i| i * 10_000).collect();
        let lines = render(&prices, 20, 4);
        assert_eq!(lines.len(), 4);
        assert!(lines.iter().all(|l| l.chars().count() <= 20 + 7));
        let flat = render(&[500_000; 5], 10, 3);
        assert_eq!(flat[2], "0.50 |#####");
        assert_eq!(flat[0], "0.50 |");
        assert!(render(&[], 10, 3).is_empty());
    }
}
