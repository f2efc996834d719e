//! Plots for the simulator (SVG or PNG, by file extension): per-node load by strategy,
//! and load CV against vnodes.

use super::SimRow;
use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

const SIZE: (u32, u32) = (1200, 500);

/// Where the plots look for a TrueType font (both formats lay out their text with it).
const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Draws the two panels into `path`: `.svg` or `.png`.
///
/// # Errors
/// Another extension, no font for PNG text, or a failed write.
pub fn draw(path: &Path, rows: &[SimRow]) -> anyhow::Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    if !matches!(ext.as_str(), "svg" | "png") {
        anyhow::bail!("--plot {}: the file must end in .svg or .png (got {ext:?})", path.display());
    }
    // SVG needs the font too: plotters measures text with it to lay out labels.
    register_font()?;
    let drawn = if ext == "svg" {
        panels(&SVGBackend::new(path, SIZE).into_drawing_area(), rows)
    } else {
        panels(&BitMapBackend::new(path, SIZE).into_drawing_area(), rows)
    };
    if drawn.is_err() {
        // No half-drawn file left behind to be mistaken for a plot.
        let _ = std::fs::remove_file(path);
    }
    drawn.with_context(|| format!("drawing {}", path.display()))
}

/// Registers a system TrueType font as "sans-serif" for bitmap text, once per process.
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let candidates = std::env::var("HALKA_FONT").into_iter().chain(FONT_PATHS.iter().map(|p| (*p).to_string()));
            for path in candidates {
                if let Ok(bytes) = std::fs::read(&path) {
                    // Plotters keeps fonts for the life of the process.
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                        .map_err(|_| format!("{path} is not a usable TrueType font"));
                }
            }
            Err("plots need a TrueType font for their text: install fonts-dejavu-core or set HALKA_FONT to a .ttf file".to_string())
        })
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn panels<DB>(root: &DrawingArea<DB, Shift>, rows: &[SimRow]) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(640);
    loads(&left, rows)?;
    cv_by_vnodes(&right, rows)?;
    root.present()?;
    Ok(())
}

fn label(r: &SimRow) -> String {
    match (r.vnodes, r.partitions) {
        (Some(v), _) if r.strategy == "vnode-ring" => format!("vnode-ring {v}"),
        (_, Some(p)) => format!("partitioned {p}"),
        _ => r.strategy.to_string(),
    }
}

fn loads<DB>(area: &DrawingArea<DB, Shift>, rows: &[SimRow]) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let nodes = rows.first().map_or(1, |r| r.node_loads.len());
    let ymax = rows.iter().flat_map(|r| r.node_loads.iter().copied()).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("primary load per node (1.0 = fair share)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(0.5..nodes as f64 + 0.5, 0.0..ymax * 1.1)?;
    chart.configure_mesh().x_desc("node").y_desc("load / mean").draw()?;
    for (i, r) in rows.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> =
            r.node_loads.iter().enumerate().map(|(n, &l)| (n as f64 + 1.0, l)).collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(label(r))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    Ok(())
}

fn cv_by_vnodes<DB>(area: &DrawingArea<DB, Shift>, rows: &[SimRow]) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let ring: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.strategy == "vnode-ring")
        .filter_map(|r| r.vnodes.map(|v| (f64::from(v), r.load_cv * 100.0)))
        .collect();
    let xmax = ring.iter().map(|p| p.0).fold(10.0, f64::max);
    let ymax = ring.iter().map(|p| p.1).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption("load CV vs virtual nodes", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d((1.0..xmax).log_scale(), 0.0..ymax * 1.1)?;
    chart.configure_mesh().x_desc("vnodes per node").y_desc("CV %").draw()?;
    chart
        .draw_series(LineSeries::new(ring.clone(), RED.stroke_width(2)))?
        .label("vnode-ring")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
    chart.draw_series(ring.iter().map(|&p| Circle::new(p, 3, RED.filled())))?;
    let ideal: Vec<(f64, f64)> = ring.iter().map(|&(v, _)| (v, 100.0 / v.sqrt())).collect();
    chart
        .draw_series(LineSeries::new(ideal, BLUE.mix(0.6)))?
        .label("1/sqrt(vnodes)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    if let Some(p) = rows.iter().find(|r| r.strategy == "partitioned") {
        let cv = p.load_cv * 100.0;
        chart
            .draw_series(LineSeries::new(vec![(1.0, cv), (xmax, cv)], GREEN.stroke_width(2)))?
            .label(label(p))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], GREEN));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    Ok(())
}
