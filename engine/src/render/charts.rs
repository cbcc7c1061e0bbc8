//! Charts as inline SVG, placed by hand: no script, no external resource, so they work offline,
//! under a strict Content-Security-Policy and on paper. Colours come from CSS classes (`s1`…
//! `s5`, `bar`, `ax`, `grid`) so the page's dark mode and print styles apply to them.
//!
//! Every text that reaches the SVG is escaped here: series names are flow names and host names
//! taken from the capture, which is hostile input.

use std::fmt::Write;

/// Drawing size in SVG units; the SVG scales to the page width.
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
/// Room for the title (top), the axis labels (left, right, bottom).
const TOP: f64 = 58.0;
/// Baselines of the title and of the legend, above the plot.
const TITLE_Y: f64 = 20.0;
const LEGEND_Y: f64 = 42.0;
/// First bar of a horizontal bar chart (no legend there).
const HBAR_TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 70.0;
/// Points drawn per line; longer series are reduced to the largest value per slot so spikes
/// stay visible while the SVG stays small.
pub const MAX_LINE_POINTS: usize = 600;
/// Bars drawn in one bar chart.
pub const MAX_BARS: usize = 40;
/// Lines in one chart; more are unreadable.
pub const MAX_SERIES: usize = 5;

/// One line of a line chart.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub name: String,
    /// (x, y) points, x increasing.
    pub points: Vec<(f64, f64)>,
}

/// Escapes text for SVG/HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// "Nice" axis ticks (1, 2 or 5 × 10^k steps) covering `[lo, hi]`.
pub fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || target == 0 {
        return vec![lo, hi].into_iter().filter(|v| v.is_finite()).collect();
    }
    let raw = (hi - lo) / target as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    (0..=target * 3)
        .map(|i| first + i as f64 * step)
        .take_while(|v| *v <= hi + step * 1e-9)
        .collect()
}

/// Ticks from 0 to a round top at or above `hi`, and that top (a value axis).
pub fn value_axis(hi: f64) -> (Vec<f64>, f64) {
    let hi = if hi.is_finite() && hi > 0.0 { hi } else { 1.0 };
    let raw = hi / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let top = (hi / step).ceil() * step;
    let n = (top / step).round() as usize;
    ((0..=n).map(|i| i as f64 * step).collect(), top)
}

/// Short tick label: 1.5k, 2M, 0.25.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let (x, unit) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{unit}")
}

fn open(out: &mut String, title: &str, class: &str) {
    let _ = write!(
        out,
        r#"<figure class="chart {class}"><svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}"><title>{t}</title><text class="ct" x="{x}" y="{TITLE_Y}" text-anchor="middle">{t}</text>"#,
        t = esc(title),
        x = WIDTH / 2.0
    );
}

fn close(out: &mut String, caption: &str) {
    let _ = write!(out, "</svg>");
    if !caption.is_empty() {
        let _ = write!(out, "<figcaption>{}</figcaption>", esc(caption));
    }
    out.push_str("</figure>");
}

/// Axis titles: x below the plot, y (left, and right when given) turned 90°.
fn axis_titles(out: &mut String, x: &str, y_left: &str, y_right: Option<&str>) {
    let mid_y = TOP + (HEIGHT - TOP - BOTTOM) / 2.0;
    let _ = write!(
        out,
        r#"<text class="al" x="{}" y="{}" text-anchor="middle">{}</text><text class="al" transform="translate(16 {mid_y}) rotate(-90)" text-anchor="middle">{}</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 8.0,
        esc(x),
        esc(y_left)
    );
    if let Some(r) = y_right {
        let _ = write!(
            out,
            r#"<text class="al s2t" transform="translate({} {mid_y}) rotate(90)" text-anchor="middle">{}</text>"#,
            WIDTH - 14.0,
            esc(r)
        );
    }
}

/// Maps a value range onto the plot's vertical extent.
#[derive(Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl Scale {
    fn new(lo: f64, hi: f64, from: f64, to: f64) -> Self {
        let hi = if hi > lo { hi } else { lo + 1.0 };
        Scale { lo, hi, from, to }
    }
    fn at(&self, v: f64) -> f64 {
        self.from + (v - self.lo) / (self.hi - self.lo) * (self.to - self.from)
    }
}

fn plot_box() -> (f64, f64, f64, f64) {
    (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM)
}

/// Y ticks with grid lines, labels on the left (or right).
fn y_axis(out: &mut String, scale: Scale, ticks_: &[f64], right: bool) {
    let (x0, x1, _, _) = plot_box();
    for t in ticks_ {
        let y = scale.at(*t);
        if !right {
            let _ = write!(
                out,
                r#"<line class="grid" x1="{x0}" x2="{x1}" y1="{y:.1}" y2="{y:.1}"/>"#
            );
        }
        let (x, anchor, class) = if right {
            (x1 + 6.0, "start", "tl s2t")
        } else {
            (x0 - 6.0, "end", "tl")
        };
        let _ = write!(
            out,
            r#"<text class="{class}" x="{x}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
            y + 4.0,
            short(*t)
        );
    }
}

fn x_axis(out: &mut String, scale: Scale, ticks_: &[f64]) {
    let (x0, x1, _, y1) = plot_box();
    let _ = write!(
        out,
        r#"<line class="ax" x1="{x0}" x2="{x1}" y1="{y1}" y2="{y1}"/>"#
    );
    for t in ticks_ {
        let x = scale.at(*t);
        let _ = write!(
            out,
            r#"<line class="ax" x1="{x:.1}" x2="{x:.1}" y1="{y1}" y2="{}"/><text class="tl" x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#,
            y1 + 4.0,
            y1 + 16.0,
            short(*t)
        );
    }
}

/// Keeps at most `max` points: the point with the largest y of each slot.
pub fn reduce(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if finite.len() <= max || max == 0 {
        return finite;
    }
    finite
        .chunks(finite.len().div_ceil(max))
        .filter_map(|c| {
            c.iter()
                .copied()
                .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal))
        })
        .collect()
}

fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn polyline(out: &mut String, class: &str, pts: &[(f64, f64)], xs: Scale, ys: Scale) {
    if pts.is_empty() {
        return;
    }
    let _ = write!(out, r#"<polyline class="{class}" points=""#);
    for (x, y) in pts {
        let _ = write!(out, "{:.1},{:.1} ", xs.at(*x), ys.at(*y));
    }
    out.push_str(r#""/>"#);
    if pts.len() == 1 {
        let (x, y) = pts[0];
        let _ = write!(
            out,
            r#"<circle class="{class}" cx="{:.1}" cy="{:.1}" r="3"/>"#,
            xs.at(x),
            ys.at(y)
        );
    }
}

fn legend(out: &mut String, names: &[(String, &str)]) {
    let mut x = LEFT;
    for (name, class) in names {
        let name = crate::render::view::truncate(name, 48);
        let _ = write!(
            out,
            r#"<line class="{class}" x1="{x}" x2="{}" y1="{y}" y2="{y}"/><text class="tl" x="{}" y="{}">{}</text>"#,
            x + 18.0,
            x + 22.0,
            LEGEND_Y + 4.0,
            esc(&name),
            y = LEGEND_Y
        );
        x += 30.0 + 6.5 * name.chars().count() as f64;
    }
}

/// A line chart with two series on two y axes (left and right), e.g. packets/s and bytes/s.
pub fn dual_line_chart(
    title: &str,
    x_label: &str,
    left: &Series,
    right: &Series,
    caption: &str,
) -> String {
    let l = reduce(&left.points, MAX_LINE_POINTS);
    let r = reduce(&right.points, MAX_LINE_POINTS);
    let Some((x_lo, x_hi)) = extent(l.iter().chain(&r).map(|p| p.0)) else {
        return String::new();
    };
    let (x0, x1, y0, y1) = plot_box();
    let xs = Scale::new(x_lo, x_hi, x0, x1);
    let ly = extent(l.iter().map(|p| p.1)).map_or(1.0, |e| e.1.max(0.0));
    let ry = extent(r.iter().map(|p| p.1)).map_or(1.0, |e| e.1.max(0.0));
    let (lt, l_top) = value_axis(ly);
    let (rt, r_top) = value_axis(ry);
    let lys = Scale::new(0.0, l_top, y1, y0);
    let rys = Scale::new(0.0, r_top, y1, y0);
    let mut out = String::new();
    open(&mut out, title, "line");
    y_axis(&mut out, lys, &lt, false);
    y_axis(&mut out, rys, &rt, true);
    x_axis(&mut out, xs, &ticks(x_lo, x_hi, 8));
    polyline(&mut out, "s1", &l, xs, lys);
    polyline(&mut out, "s2", &r, xs, rys);
    legend(
        &mut out,
        &[(left.name.clone(), "s1"), (right.name.clone(), "s2")],
    );
    axis_titles(&mut out, x_label, &left.name, Some(&right.name));
    close(&mut out, caption);
    out
}

/// A line chart of several series on one y axis (at most [`MAX_SERIES`]).
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    caption: &str,
) -> String {
    let series: Vec<Series> = series
        .iter()
        .take(MAX_SERIES)
        .map(|s| Series {
            name: s.name.clone(),
            points: reduce(&s.points, MAX_LINE_POINTS),
        })
        .collect();
    let all = || series.iter().flat_map(|s| s.points.iter());
    let Some((x_lo, x_hi)) = extent(all().map(|p| p.0)) else {
        return String::new();
    };
    let y_hi = extent(all().map(|p| p.1)).map_or(1.0, |e| e.1.max(0.0));
    let (x0, x1, y0, y1) = plot_box();
    let xs = Scale::new(x_lo, x_hi, x0, x1);
    let (yt, y_top) = value_axis(y_hi);
    let ys = Scale::new(0.0, y_top, y1, y0);
    let mut out = String::new();
    open(&mut out, title, "line");
    y_axis(&mut out, ys, &yt, false);
    x_axis(&mut out, xs, &ticks(x_lo, x_hi, 8));
    let classes = ["s1", "s2", "s3", "s4", "s5"];
    let mut names = Vec::new();
    for (s, class) in series.iter().zip(classes) {
        polyline(&mut out, class, &s.points, xs, ys);
        names.push((s.name.clone(), class));
    }
    legend(&mut out, &names);
    axis_titles(&mut out, x_label, y_label, None);
    close(&mut out, caption);
    out
}

/// Vertical bars with a label under each (at most [`MAX_BARS`]); `touching` draws a histogram.
pub fn bar_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    bars: &[(String, f64)],
    touching: bool,
    caption: &str,
) -> String {
    let bars: Vec<&(String, f64)> = bars
        .iter()
        .filter(|b| b.1.is_finite())
        .take(MAX_BARS)
        .collect();
    if bars.is_empty() {
        return String::new();
    }
    let (x0, x1, y0, y1) = plot_box();
    let y_hi = bars.iter().map(|b| b.1).fold(0.0, f64::max);
    let (yt, y_top) = value_axis(y_hi);
    let ys = Scale::new(0.0, y_top, y1, y0);
    let slot = (x1 - x0) / bars.len() as f64;
    let gap = if touching { 1.0 } else { slot * 0.25 };
    let mut out = String::new();
    open(&mut out, title, "bars");
    y_axis(&mut out, ys, &yt, false);
    let _ = write!(
        out,
        r#"<line class="ax" x1="{x0}" x2="{x1}" y1="{y1}" y2="{y1}"/>"#
    );
    // Labels are thinned so they never overlap (about 7 units per character).
    let longest = bars
        .iter()
        .map(|b| b.0.chars().count().min(14))
        .max()
        .unwrap_or(1) as f64;
    let every = ((longest * 6.5 + 6.0) / slot).ceil().max(1.0) as usize;
    for (i, (name, v)) in bars.iter().enumerate() {
        let x = x0 + i as f64 * slot + gap / 2.0;
        let y = ys.at(v.max(0.0));
        let name = crate::render::view::truncate(name, 14);
        let _ = write!(
            out,
            r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}"><title>{}: {}</title></rect>"#,
            (slot - gap).max(1.0),
            (y1 - y).max(0.0),
            esc(&name),
            short(*v)
        );
        if i % every == 0 {
            let _ = write!(
                out,
                r#"<text class="tl" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x + (slot - gap) / 2.0,
                y1 + 16.0,
                esc(&name)
            );
        }
    }
    axis_titles(&mut out, x_label, y_label, None);
    close(&mut out, caption);
    out
}

/// Horizontal bars, largest first, with the value at the end of each bar (rankings).
pub fn hbar_chart(title: &str, value_label: &str, bars: &[(String, f64)], caption: &str) -> String {
    let bars: Vec<&(String, f64)> = bars
        .iter()
        .filter(|b| b.1.is_finite())
        .take(MAX_BARS)
        .collect();
    if bars.is_empty() {
        return String::new();
    }
    let row = 22.0;
    let label_w = 250.0;
    let height = HBAR_TOP + row * bars.len() as f64 + 36.0;
    let x0 = label_w;
    let x1 = WIDTH - 90.0;
    let hi = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<figure class="chart hbars"><svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{t}"><title>{t}</title><text class="ct" x="{x}" y="{TITLE_Y}" text-anchor="middle">{t}</text>"#,
        t = esc(title),
        x = WIDTH / 2.0
    );
    for (i, (name, v)) in bars.iter().enumerate() {
        let y = HBAR_TOP + i as f64 * row;
        let w = (v.max(0.0) / hi * (x1 - x0)).max(1.0);
        let name = crate::render::view::truncate(name, 38);
        let _ = write!(
            out,
            r#"<text class="tl" x="{}" y="{:.1}" text-anchor="end">{}</text><rect class="bar" x="{x0}" y="{:.1}" width="{w:.1}" height="{:.1}"><title>{}: {}</title></rect><text class="tl" x="{:.1}" y="{:.1}">{}</text>"#,
            x0 - 6.0,
            y + row * 0.65,
            esc(&name),
            y + 3.0,
            row - 6.0,
            esc(&name),
            short(*v),
            x0 + w + 6.0,
            y + row * 0.65,
            short(*v)
        );
    }
    let _ = write!(
        out,
        r#"<line class="ax" x1="{x0}" x2="{x0}" y1="{HBAR_TOP}" y2="{:.1}"/><text class="al" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        HBAR_TOP + row * bars.len() as f64,
        x0 + (x1 - x0) / 2.0,
        height - 10.0,
        esc(value_label)
    );
    close(&mut out, caption);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_numbers_covering_the_range() {
        assert_eq!(ticks(0.0, 10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(0.0, 0.9, 3), vec![0.0, 0.5]);
    }

    #[test]
    fn a_value_axis_ends_on_a_round_number_above_the_largest_value() {
        assert_eq!(
            value_axis(490.0),
            (vec![0.0, 100.0, 200.0, 300.0, 400.0, 500.0], 500.0)
        );
        assert_eq!(value_axis(0.0).1, 1.0);
    }

    #[test]
    fn tick_labels_use_k_m_g() {
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(2_000_000.0), "2M");
        assert_eq!(short(0.25), "0.25");
    }

    #[test]
    fn reduction_keeps_the_spikes() {
        let pts: Vec<(f64, f64)> = (0..1000)
            .map(|i| (i as f64, if i == 501 { 99.0 } else { 1.0 }))
            .collect();
        let r = reduce(&pts, 100);
        assert!(r.len() <= 100);
        assert!(r.contains(&(501.0, 99.0)));
    }

    #[test]
    fn series_names_are_escaped_in_the_svg() {
        let s = Series {
            name: "<script>alert(1)</script>".into(),
            points: vec![(0.0, 1.0), (1.0, 2.0)],
        };
        let svg = line_chart("t", "x", "y", &[s], "");
        assert!(!svg.contains("<script"));
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn charts_without_data_draw_nothing() {
        assert_eq!(line_chart("t", "x", "y", &[], ""), "");
        assert_eq!(bar_chart("t", "x", "y", &[], false, ""), "");
        assert_eq!(hbar_chart("t", "x", &[], ""), "");
    }

    #[test]
    fn non_finite_values_do_not_break_a_chart() {
        let s = Series {
            name: "a".into(),
            points: vec![(0.0, f64::NAN), (1.0, f64::INFINITY), (2.0, 3.0)],
        };
        let svg = line_chart("t", "x", "y", &[s], "");
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}
