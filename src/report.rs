//! Run artifacts: a `metrics.csv` with one row per update and a learning-curve PNG.

use std::io::Write;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{Error, Result};

/// The font every plot uses (DejaVu Sans, shipped in `assets/` with its license), so plots render
/// the same on a machine without system fonts.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FONT_FAMILY: &str = "factored-rl-sans";

/// An append-only CSV file whose header is fixed by the first row.
#[derive(Debug)]
pub struct MetricsCsv {
    path: PathBuf,
    columns: Option<Vec<String>>,
}

impl MetricsCsv {
    /// A CSV at `path`. When `append` is set and the file exists (a resumed run), rows are added
    /// after the existing ones; otherwise the file is started afresh.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path.
    pub fn create(path: impl Into<PathBuf>, append: bool) -> Result<Self> {
        let path = path.into();
        let columns = if append && path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            text.lines()
                .next()
                .map(|h| h.split(',').map(String::from).collect())
        } else {
            std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
            None
        };
        Ok(Self { path, columns })
    }

    /// Appends one row of `(column, value)` pairs; the first row written fixes the columns.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Invalid`] when a row's columns differ from the header's.
    pub fn append(&mut self, row: &[(String, String)]) -> Result<()> {
        let names: Vec<String> = row.iter().map(|(k, _)| k.clone()).collect();
        let mut text = String::new();
        match &self.columns {
            None => {
                text.push_str(&names.join(","));
                text.push('\n');
                self.columns = Some(names);
            }
            Some(columns) if *columns != names => {
                return Err(Error::invalid(
                    format!("metrics row for {}", self.path.display()),
                    format!("columns {names:?} differ from the header {columns:?}"),
                ));
            }
            Some(_) => {}
        }
        text.push_str(
            &row.iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
        text.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        file.write_all(text.as_bytes())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// The column `column` of every row written so far (for plotting), parsed as numbers.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Invalid`] when the column does not exist.
    pub fn column(&self, column: &str) -> Result<Vec<f64>> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
        let index = header.iter().position(|&h| h == column).ok_or_else(|| {
            Error::invalid(
                "column",
                format!("`{column}` is not in {}", self.path.display()),
            )
        })?;
        Ok(lines
            .filter_map(|l| l.split(',').nth(index).and_then(|v| v.parse().ok()))
            .collect())
    }

    /// The `(x, y)` pairs of the rows where both columns hold a number (a row may leave a
    /// column empty, e.g. an evaluation that did not run that update).
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Invalid`] when a column does not exist.
    pub fn points(&self, x: &str, y: &str) -> Result<Vec<(f64, f64)>> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
        let index = |column: &str| {
            header.iter().position(|&h| h == column).ok_or_else(|| {
                Error::invalid(
                    "column",
                    format!("`{column}` is not in {}", self.path.display()),
                )
            })
        };
        let (ix, iy) = (index(x)?, index(y)?);
        Ok(lines
            .filter_map(|l| {
                let fields: Vec<&str> = l.split(',').collect();
                let value = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
                Some((value(ix)?, value(iy)?))
            })
            .collect())
    }
}

/// A line plot of `points` with axis labels and a title, written as a PNG (atomically).
///
/// # Errors
/// [`Error::Io`] or [`Error::Invalid`] when the plot cannot be drawn or written.
pub fn plot_curve(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<()> {
    // Registering twice is harmless; the first registration wins.
    let _ = plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT);
    // The image encoder picks the format from the extension, so the temporary file keeps `.png`.
    let tmp = path.with_file_name(format!(
        ".{}.tmp.png",
        path.file_name()
            .map_or("curve".into(), |n| n.to_string_lossy())
    ));
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(&tmp, (900, 540)).into_drawing_area();
        root.fill(&WHITE)?;
        let points = series.iter().flat_map(|(_, p)| p.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in points {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad = ((y1 - y0) * 0.05).max(1e-3);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT_FAMILY, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1.max(x0 + 1e-9), (y0 - pad)..(y1 + pad))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style((FONT_FAMILY, 14))
            .draw()?;
        let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        for (i, (name, points)) in series.iter().enumerate() {
            let color = colors[i % colors.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .label_font((FONT_FAMILY, 14))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| Error::invalid(format!("plot {}", path.display()), e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_header_is_fixed_by_the_first_row_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        let row = |i: usize| {
            vec![
                ("step".to_string(), i.to_string()),
                ("ret".to_string(), format!("{}", i * 2)),
            ]
        };
        let mut csv = MetricsCsv::create(&path, false).unwrap();
        csv.append(&row(1)).unwrap();
        csv.append(&row(2)).unwrap();
        let mut resumed = MetricsCsv::create(&path, true).unwrap();
        resumed.append(&row(3)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "step,ret\n1,2\n2,4\n3,6\n"
        );
        assert_eq!(resumed.column("ret").unwrap(), vec![2.0, 4.0, 6.0]);
        let mut sparse = MetricsCsv::create(dir.path().join("s.csv"), false).unwrap();
        for (step, eval) in [("1", ""), ("2", "0.5"), ("3", "")] {
            sparse
                .append(&[
                    ("step".to_string(), step.to_string()),
                    ("eval".to_string(), eval.to_string()),
                ])
                .unwrap();
        }
        assert_eq!(sparse.points("step", "eval").unwrap(), vec![(2.0, 0.5)]);
        assert!(matches!(
            sparse.points("step", "absent"),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            resumed.append(&[("other".to_string(), "1".to_string())]),
            Err(Error::Invalid { .. })
        ));
    }

    #[test]
    fn curve_png_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.png");
        let points: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64 * 100.0, (i as f64).sqrt()))
            .collect();
        plot_curve(
            &path,
            "test",
            "env steps",
            "mean return",
            &[("train", points)],
        )
        .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(bytes.len() > 5_000, "a plot with text, not an empty image");
    }
}
