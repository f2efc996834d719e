//! Plots for the simulator (SVG or PNG, by file extension): per-node load by strategy,
//! load CV against vnodes, and the keys each strategy moves when nodes join.

use super::SimRow;
use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

const SIZE: (u32, u32) = (1800, 520);

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
    let (left, rest) = root.split_horizontally(SIZE.0 * 3 / 8);
    let (middle, right) = rest.split_horizontally(SIZE.0 * 5 / 16);
    loads(&left, rows)?;
    cv_by_vnodes(&middle, rows)?;
    movement(&right, rows)?;
    root.present()?;
    Ok(())
}

/// Ten colours far enough apart to tell every default series apart (Tableau 10).
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of the `i`th line; past ten they repeat, drawn dashed by the caller.
fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// A legend entry's mark: a short line in the series' colour.
fn swatch(colour: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour)
}

/// Draws a chart's legend at `position`, over a nearly opaque white box.
fn draw_legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn label(r: &SimRow) -> String {
    match (r.vnodes, r.partitions) {
        (Some(v), _) if r.strategy == "vnode-ring" => format!("vnode-ring {v}"),
        (_, Some(p)) => format!("partitioned {p}"),
        _ => r.strategy.to_string(),
    }
}

/// Rows with identical per-node loads (`ring` and `vnode-ring 1` place alike) become one
/// line with both names, so neither hides under the other.
fn distinct_loads(rows: &[SimRow]) -> Vec<(String, &[f64])> {
    let mut lines: Vec<(String, &[f64])> = Vec::new();
    for r in rows {
        match lines.iter_mut().find(|(_, loads)| *loads == r.node_loads.as_slice()) {
            Some((name, _)) => *name = format!("{name} = {}", label(r)),
            None => lines.push((label(r), &r.node_loads)),
        }
    }
    lines
}

fn loads<DB>(area: &DrawingArea<DB, Shift>, rows: &[SimRow]) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let nodes = rows.first().map_or(1, |r| r.node_loads.len());
    let ymax = rows.iter().flat_map(|r| r.node_loads.iter().copied()).fold(1.0, f64::max);
    // Headroom above the data for the legend, which sits there.
    let mut chart = ChartBuilder::on(area)
        .caption("primary load per node (1.0 = fair share)", ("sans-serif", 18))
        .margin(10)
        .margin_right(20)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(0.5..nodes as f64 + 0.5, 0.0..ymax * 1.9)?;
    chart.configure_mesh().x_desc("node").y_desc("load / mean").draw()?;
    for (i, (name, node_loads)) in distinct_loads(rows).into_iter().enumerate() {
        let colour = colour(i);
        let points: Vec<(f64, f64)> =
            node_loads.iter().enumerate().map(|(n, &l)| (n as f64 + 1.0, l)).collect();
        let style = colour.stroke_width(2);
        let series = if i < COLOURS.len() {
            chart.draw_series(LineSeries::new(points, style))?
        } else {
            chart.draw_series(DashedLineSeries::new(points, 6, 4, style))?
        };
        series.label(name).legend(swatch(colour));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
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
    // Past the largest setting, so its tick label is not cut at the edge.
    let mut chart = ChartBuilder::on(area)
        .caption("load CV vs virtual nodes", ("sans-serif", 18))
        .margin(10)
        .margin_right(25)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d((1.0..xmax * 2.0).log_scale(), 0.0..ymax * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("vnodes per node")
        .y_desc("CV %")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let (ring_colour, ideal_colour, parts_colour) = (COLOURS[3], COLOURS[7], COLOURS[2]);
    chart
        .draw_series(LineSeries::new(ring.clone(), ring_colour.stroke_width(2)))?
        .label("vnode-ring")
        .legend(swatch(ring_colour));
    chart.draw_series(ring.iter().map(|&p| Circle::new(p, 3, ring_colour.filled())))?;
    let ideal: Vec<(f64, f64)> = ring.iter().map(|&(v, _)| (v, 100.0 / v.sqrt())).collect();
    chart
        .draw_series(DashedLineSeries::new(ideal, 6, 4, ideal_colour.into()))?
        .label("1/sqrt(vnodes)")
        .legend(swatch(ideal_colour));
    if let Some(p) = rows.iter().find(|r| r.strategy == "partitioned") {
        let cv = p.load_cv * 100.0;
        chart
            .draw_series(LineSeries::new(
                vec![(1.0, cv), (xmax * 2.0, cv)],
                parts_colour.stroke_width(2),
            ))?
            .label(label(p))
            .legend(swatch(parts_colour));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

/// Keys that move when nodes join, per strategy, against the ideal share: the table's
/// headline figure.
fn movement<DB>(area: &DrawingArea<DB, Shift>, rows: &[SimRow]) -> anyhow::Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let moved: Vec<(String, f64)> =
        rows.iter().filter_map(|r| r.moved_fraction.map(|m| (label(r), m * 100.0))).collect();
    let ideal = rows.iter().find_map(|r| r.ideal_moved_fraction).map(|f| f * 100.0);
    let n = moved.len().max(1);
    let xmax = moved.iter().map(|m| m.1).chain(ideal).fold(1.0, f64::max) * 1.1;
    let names: Vec<String> = moved.iter().map(|m| m.0.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption("keys moved when a node joins", ("sans-serif", 18))
        .margin(10)
        .margin_right(25)
        .x_label_area_size(30)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..xmax, 0.0..n as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("% of keys")
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| {
            // Each bar spans [i, i + 1); its name sits at the middle.
            let i = y.floor();
            if (y - i - 0.5).abs() < 1e-9 {
                names.get(n - 1 - i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()?;
    chart.draw_series(moved.iter().enumerate().map(|(i, (_, pct))| {
        let y = (n - 1 - i) as f64;
        Rectangle::new([(0.0, y + 0.15), (*pct, y + 0.85)], colour(0).filled())
    }))?;
    if let Some(ideal) = ideal {
        let ideal_colour = COLOURS[3];
        chart
            .draw_series(DashedLineSeries::new(
                vec![(ideal, 0.0), (ideal, n as f64)],
                6,
                4,
                ideal_colour.stroke_width(2),
            ))?
            .label(format!("ideal {ideal:.1}%"))
            .legend(swatch(ideal_colour));
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    }
    Ok(())
}
