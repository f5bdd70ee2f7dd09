//! Line charts as SVG, for experiment reports.

use plotters::prelude::*;

/// One line of a chart.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// (x, y) points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A chart: axes, labels and lines.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Figure {
    /// File stem of the SVG (e.g. `latency-vs-delay`).
    pub id: String,
    /// Title above the chart.
    pub title: String,
    /// X axis label, with unit.
    pub x_label: String,
    /// Y axis label, with unit.
    pub y_label: String,
    /// Whether the x axis is logarithmic.
    pub log_x: bool,
    /// The lines.
    pub series: Vec<Series>,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Renders `fig` as an SVG document.
pub fn svg(fig: &Figure) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let pts = fig.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            (x0, x1) = (0.0, 1.0);
        }
        if x0 == x1 {
            x1 = x0 + 1.0;
        }
        let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.08 };
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(&fig.title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64);
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(fig.x_label.as_str())
                    .y_desc(fig.y_label.as_str())
                    .light_line_style(WHITE.mix(0.0))
                    .draw()
                    .map_err(|e| e.to_string())?;
                for (i, s) in fig.series.iter().enumerate() {
                    let color = COLORS[i % COLORS.len()];
                    chart
                        .draw_series(LineSeries::new(
                            s.points.iter().copied(),
                            color.stroke_width(2),
                        ))
                        .map_err(|e| e.to_string())?
                        .label(s.label.as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                        });
                    chart
                        .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(|e| e.to_string())?;
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.3))
                    .position(SeriesLabelPosition::UpperLeft)
                    .draw()
                    .map_err(|e| e.to_string())?;
            }};
        }
        if fig.log_x && x0 > 0.0 {
            draw!(
                builder
                    .build_cartesian_2d((x0..x1).log_scale(), 0.0..y1)
                    .map_err(|e| e.to_string())?
            );
        } else {
            draw!(
                builder
                    .build_cartesian_2d(x0..x1, 0.0..y1)
                    .map_err(|e| e.to_string())?
            );
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_lines_and_labels() {
        let fig = Figure {
            id: "t".into(),
            title: "read latency".into(),
            x_label: "delay (ms)".into(),
            y_label: "p50 (ms)".into(),
            log_x: false,
            series: vec![
                Series {
                    label: "R=1".into(),
                    points: vec![(5.0, 10.0), (10.0, 20.0)],
                },
                Series {
                    label: "R=3".into(),
                    points: vec![(5.0, 14.0), (10.0, 29.0)],
                },
            ],
        };
        let s = svg(&fig).unwrap();
        assert!(s.starts_with("<svg"));
        assert!(s.contains("read latency") && s.contains("R=3"));
        let empty = Figure {
            series: vec![],
            log_x: true,
            ..fig
        };
        assert!(svg(&empty).is_ok(), "an empty chart still renders");
    }
}
