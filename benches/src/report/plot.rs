//! `--plot FILE.svg`: detection (or delivery) CDFs for fault scenarios, the members-seen
//! curve otherwise, one line per implementation. SVG only, with plotters' built-in text
//! metrics, so no system font or fontconfig is needed.

use std::path::Path;

use plotters::prelude::*;

use super::figures::{Figures, Series};

const COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

/// Draws the runs into an SVG file at `path`.
pub fn plot(path: &Path, runs: &[(Figures, Series)]) -> Result<(), String> {
    let Some((first, _)) = runs.first() else {
        return Ok(());
    };
    let cdf = runs.iter().any(|(f, _)| !f.detection_times.is_empty());
    let lines: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|(f, s)| {
            let points = if cdf { cdf_points(f) } else { s.points.clone() };
            (f.implementation.clone(), points)
        })
        .collect();
    let x_max = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(x, _)| x))
        .fold(1.0f64, f64::max)
        * 1.05;
    let (title, x_desc, y_desc) = if cdf {
        (
            format!(
                "{}: detection CDF, {} nodes, {}% loss",
                first.scenario,
                first.nodes,
                first.loss * 100.0
            ),
            "seconds since the fault",
            "share of observers",
        )
    } else {
        (
            format!(
                "{}: members seen, {} nodes, {}% loss",
                first.scenario,
                first.nodes,
                first.loss * 100.0
            ),
            "simulated seconds",
            "mean share reported up",
        )
    };
    draw(path, &title, x_desc, y_desc, x_max, &lines).map_err(|e| e.to_string())
}

/// `(t, share of observers that had detected by t)` as a step curve.
fn cdf_points(f: &Figures) -> Vec<(f64, f64)> {
    let total = f.observers.max(1) as f64;
    let mut points = vec![(0.0, 0.0)];
    for (i, &t) in f.detection_times.iter().enumerate() {
        points.push((t, i as f64 / total));
        points.push((t, (i + 1) as f64 / total));
    }
    points
}

fn draw(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    x_max: f64,
    lines: &[(String, Vec<(f64, f64)>)],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (720, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..x_max, 0f64..1.05f64)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    for (k, (label, points)) in lines.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
