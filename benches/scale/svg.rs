//! Two small line charts as one SVG: memory per connection and CPU per
//! heartbeat against connections held.

pub struct Point {
    pub connections: u64,
    pub server_bytes: f64,
    pub kernel_bytes: f64,
    pub server_us_per_hb: f64,
    pub swarm_us_per_hb: f64,
}

const W: f64 = 420.0;
const H: f64 = 260.0;
const LEFT: f64 = 60.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 30.0;
const COLORS: [&str; 2] = ["#1f77b4", "#d62728"];

/// The whole picture: two panels side by side.
pub fn curves(points: &[Point]) -> String {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        2.0 * W
    );
    let x: Vec<f64> = points.iter().map(|p| p.connections as f64).collect();
    svg += &panel(
        0.0,
        "memory per connection (bytes)",
        &x,
        &[
            (
                "kernel, both ends (slab)",
                points.iter().map(|p| p.kernel_bytes).collect(),
            ),
            (
                "server, user space (RSS)",
                points.iter().map(|p| p.server_bytes).collect(),
            ),
        ],
    );
    svg += &panel(
        W,
        "CPU per heartbeat (µs)",
        &x,
        &[
            (
                "server",
                points.iter().map(|p| p.server_us_per_hb).collect(),
            ),
            ("swarm", points.iter().map(|p| p.swarm_us_per_hb).collect()),
        ],
    );
    svg + "</svg>\n"
}

fn panel(dx: f64, title: &str, x: &[f64], series: &[(&str, Vec<f64>)]) -> String {
    let x_max = x.iter().cloned().fold(1.0, f64::max);
    let y_max = nice(
        series
            .iter()
            .flat_map(|(_, ys)| ys.iter().cloned())
            .filter(|y| y.is_finite())
            .fold(1.0, f64::max),
    );
    let (pw, ph) = (W - LEFT - 20.0, H - TOP - BOTTOM);
    let px = |v: f64| dx + LEFT + pw * v / x_max;
    let py = |v: f64| TOP + ph * (1.0 - v / y_max);
    let mut out = format!(
        "<text x=\"{}\" y=\"18\" font-size=\"13\">{title}</text>\n",
        dx + LEFT
    );
    out += &format!(
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n",
        px(0.0),
        py(0.0),
        px(x_max),
        py(0.0),
        px(0.0),
        py(0.0),
        px(0.0),
        py(y_max)
    );
    for i in 0..=4 {
        let v = y_max * i as f64 / 4.0;
        out += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
             <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ddd\"/>\n",
            px(0.0) - 4.0,
            py(v) + 4.0,
            short(v),
            px(0.0),
            py(v),
            px(x_max),
            py(v)
        );
    }
    for &v in x {
        out += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            px(v),
            py(0.0) + 14.0,
            short(v)
        );
    }
    out += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">connections</text>\n",
        px(x_max / 2.0),
        H - 6.0
    );
    for (k, (name, ys)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let path: Vec<String> = x
            .iter()
            .zip(ys)
            .filter(|(_, y)| y.is_finite())
            .map(|(&x, &y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        out += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>\n",
            path.join(" ")
        );
        for p in &path {
            let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
            out += &format!("<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3\" fill=\"{color}\"/>\n");
        }
        out += &format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{name}</text>\n",
            px(0.0) + 10.0,
            TOP + 12.0 + 14.0 * k as f64
        );
    }
    out
}

/// The next round number at or above `v`: 1, 2 or 5 times a power of ten.
fn nice(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

/// 1000000 → "1M", 250000 → "250k", 12.5 → "12.5".
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v}")
    } else {
        format!("{v:.1}")
    }
}
