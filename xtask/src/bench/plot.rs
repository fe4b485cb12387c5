//! SVG plots (plotters, svg backend only).

use std::path::Path;

use plotters::prelude::*;

use super::Results;

const COLORS: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(100, 100, 100),
];

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("plot: {e}")
}

/// ns per call vs map_nr_max (log x, log y), one line per design and target,
/// at 16 set bits.
/// Writes nothing (and returns `false`) without traversal rows: plotters'
/// log axes loop forever on an empty range.
pub(crate) fn traversal(res: &Results, path: &Path) -> Result<bool, String> {
    if res.rows.traversal.is_empty() {
        return Ok(false);
    }
    let pts = |d: &str, target: &str| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = res
            .rows
            .traversal
            .iter()
            .filter(|t| t.design == d && t.target == target && t.set_bits == 16)
            .map(|t| (t.map_nr_max as f64, t.ns_per_call))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let xs: Vec<f64> = res
        .rows
        .traversal
        .iter()
        .map(|t| t.map_nr_max as f64)
        .collect();
    let ys: Vec<f64> = res
        .rows
        .traversal
        .iter()
        .filter(|t| t.set_bits == 16)
        .map(|t| t.ns_per_call)
        .collect();
    let (x0, x1) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(1.0, f64::max),
    );
    let (y0, y1) = (
        ys.iter().copied().fold(f64::INFINITY, f64::min),
        ys.iter().copied().fold(1.0, f64::max),
    );
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "shrink_slab traversal, 16 set bits (solid: child memcg, dashed: root)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x0 / 2.0..x1 * 2.0).log_scale(),
            (y0 / 2.0..y1 * 2.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("map_nr_max (ids)")
        .y_desc("ns per shrink_slab call")
        .draw()
        .map_err(err)?;
    for (i, d) in res.rows.designs.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts(d, "memcg"), c.stroke_width(2)))
            .map_err(err)?
            .label(format!("{d} memcg"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(DashedLineSeries::new(
                pts(d, "root"),
                6,
                4,
                c.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("{d} root"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(1)));
        chart
            .draw_series(
                pts(d, "memcg")
                    .into_iter()
                    .map(|p| Circle::new(p, 3, c.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(true)
}

/// Latency distribution of the register+free cycles in the blocked-shrinker
/// workload: latency (log y) at each percentile, one line per design.
/// Writes nothing (and returns `false`) without blocked-shrinker latencies.
pub(crate) fn registration(res: &Results, path: &Path) -> Result<bool, String> {
    if res.rows.blocked_raw.iter().all(|(_, v)| v.is_empty()) {
        return Ok(false);
    }
    let all: Vec<f64> = res
        .rows
        .blocked_raw
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let y0 = all.iter().copied().fold(f64::INFINITY, f64::min).max(0.01);
    let y1 = all.iter().copied().fold(1.0, f64::max);
    let block_ms = res
        .rows
        .blocked_shrinker
        .first()
        .map_or(0.0, |b| b.block_us / 1000.0);
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("register+free latency while one shrinker blocks {block_ms:.0} ms in reclaim"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..100.0, (y0 / 2.0..y1 * 2.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile of cycles")
        .y_desc("latency (µs)")
        .draw()
        .map_err(err)?;
    for (i, (d, sorted)) in res.rows.blocked_raw.iter().enumerate() {
        let c = COLORS[res.rows.designs.iter().position(|x| x == d).unwrap_or(i) % COLORS.len()];
        let n = sorted.len().max(1);
        let pts: Vec<(f64, f64)> = sorted
            .iter()
            .enumerate()
            .map(|(k, &l)| (100.0 * k as f64 / (n - 1).max(1) as f64, l.max(y0)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(err)?
            .label(d.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(true)
}
