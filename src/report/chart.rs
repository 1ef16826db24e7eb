//! The ladder chart of a saved report, drawn on the server as plain SVG
//! shapes (the live page draws the same chart with its script): one pair of
//! bars per size, the time on a log scale from 1 ms to the step timeout, a
//! full-height red bar with a cross where a step failed. The template only
//! places what is computed here.

use super::run::LadderRow;

const LEFT: f64 = 44.0;
const TOP: f64 = 12.0;
const HEIGHT: f64 = 140.0;
const SLOT: f64 = 34.0;
const BAR: f64 = 12.0;
const BOTTOM: f64 = 34.0;
const RIGHT: f64 = 10.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    /// The y of the time axis.
    pub base: f64,
    pub right: f64,
    pub grid: Vec<GridLine>,
    pub bars: Vec<Bar>,
    pub labels: Vec<Label>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GridLine {
    pub y: f64,
    pub label_y: f64,
    pub label: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub height: f64,
    /// `probe-down`, `probe-up` or `probe-failed` (style.css).
    pub class: &'static str,
    /// Shown on hover: "down 4,000 B: 12 ms".
    pub title: String,
    /// Where the failure cross goes, for failed steps.
    pub cross: Option<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub x: f64,
    pub y: f64,
    pub text: String,
}

/// The chart of `rows`; `timeout_ms` tops the scale.
pub fn ladder(rows: &[LadderRow], timeout_ms: f64) -> Chart {
    let width = LEFT + rows.len() as f64 * SLOT + RIGHT;
    let base = TOP + HEIGHT;
    let y_of = |ms: f64| {
        let v = (1.0 + ms.clamp(0.0, timeout_ms)).ln() / (1.0 + timeout_ms).ln();
        (v * HEIGHT).max(2.0)
    };
    let grid = [
        (1.0, "1 ms"),
        (10.0, "10 ms"),
        (100.0, "100 ms"),
        (1000.0, "1 s"),
        (10000.0, "10 s"),
    ]
    .into_iter()
    .filter(|(ms, _)| *ms <= timeout_ms)
    .map(|(ms, label)| {
        let y = base - y_of(ms);
        GridLine {
            y,
            label_y: y + 3.0,
            label,
        }
    })
    .collect();
    let mut bars = Vec::new();
    let mut labels = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let slot_x = LEFT + i as f64 * SLOT;
        let x0 = slot_x + (SLOT - 2.0 * BAR - 2.0) / 2.0;
        for (j, (cell, dir, class)) in [
            (&row.down, "down", "probe-down"),
            (&row.up, "up", "probe-up"),
        ]
        .into_iter()
        .enumerate()
        {
            let x = x0 + j as f64 * (BAR + 2.0);
            let size = crate::util::thousands(row.bytes as usize);
            match cell.ok {
                Some(true) => {
                    let h = y_of(cell.ms.unwrap_or(0.0));
                    bars.push(Bar {
                        x,
                        y: base - h,
                        height: h,
                        class,
                        title: format!("{dir} {size} B: {}", cell.text),
                        cross: None,
                    });
                }
                Some(false) => bars.push(Bar {
                    x,
                    y: base - HEIGHT,
                    height: HEIGHT,
                    class: "probe-failed",
                    title: format!("{dir} {size} B: {}", cell.text),
                    cross: Some((x + BAR / 2.0, base - HEIGHT + 11.0)),
                }),
                None => {}
            }
        }
        labels.push(Label {
            x: slot_x + SLOT / 2.0,
            y: base + 14.0,
            text: short_size(row.bytes),
        });
    }
    Chart {
        width,
        height: TOP + HEIGHT + BOTTOM,
        base,
        right: width - RIGHT,
        grid,
        bars,
        labels,
    }
}

/// "512", "16k", "1M": axis labels.
fn short_size(n: u64) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{}M", n >> 20)
    } else if n >= 16384 && n % 1024 == 0 {
        format!("{}k", n >> 10)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::run::LadderCell;

    fn cell(ok: Option<bool>, ms: f64) -> LadderCell {
        LadderCell {
            text: String::new(),
            ok,
            ms: Some(ms),
        }
    }

    #[test]
    fn a_failed_step_is_a_full_red_bar_with_a_cross() {
        let rows = [LadderRow {
            bytes: 4000,
            down: cell(Some(false), 5000.0),
            up: cell(Some(true), 10.0),
        }];
        let chart = ladder(&rows, 5000.0);
        assert_eq!(chart.bars.len(), 2);
        assert_eq!(chart.bars[0].class, "probe-failed");
        assert_eq!(chart.bars[0].height, HEIGHT);
        assert!(chart.bars[0].cross.is_some());
        assert_eq!(chart.bars[1].class, "probe-up");
        assert!(chart.bars[1].height < HEIGHT / 2.0);
        assert_eq!(chart.labels[0].text, "4000");
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(short_size(1_048_576), "1M");
        assert_eq!(short_size(65536), "64k");
        assert_eq!(short_size(1460), "1460");
    }
}
