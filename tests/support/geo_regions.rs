//! The regions and clusters of the `geo` tests, as config TOML: Guangzhou, Shanghai and
//! Beijing, each with one cluster. Included with `#[path]` by the library's unit tests
//! (`answer/geo_tests.rs`) and the integration tests (`tests/it/geo.rs`), which add their
//! own subnets, VIPs and apps; never part of gslb itself.

#![allow(dead_code)]

/// `[[geo.region]]` guangzhou, shanghai and beijing, in that order, at their cities'
/// locations and on 10.1.0.0/16, 10.2.0.0/16 and 10.3.0.0/16, each also on its
/// `more_subnets`.
pub fn regions(more_subnets: [&[&str]; 3]) -> String {
    let [gz, sh, bj] = more_subnets.map(|subnets| {
        (subnets.iter())
            .map(|s| format!(", \"{s}\""))
            .collect::<String>()
    });
    format!(
        r#"
[[geo.region]]
name = "guangzhou"
subnets = ["10.1.0.0/16"{gz}]
lat = 23.13
lon = 113.26

[[geo.region]]
name = "shanghai"
subnets = ["10.2.0.0/16"{sh}]
lat = 31.23
lon = 121.47

[[geo.region]]
name = "beijing"
subnets = ["10.3.0.0/16"{bj}]
lat = 39.90
lon = 116.40
"#
    )
}

/// A cluster in each of the [`regions`]: gz-01, sh-01 and bj-01 at `vips`, priorities
/// 1, 2 and 3.
pub fn clusters(vips: [&str; 3]) -> String {
    let [gz, sh, bj] = vips;
    format!(
        r#"
[[cluster]]
name = "gz-01"
region = "guangzhou"
vips = ["{gz}"]
priority = 1

[[cluster]]
name = "sh-01"
region = "shanghai"
vips = ["{sh}"]
priority = 2

[[cluster]]
name = "bj-01"
region = "beijing"
vips = ["{bj}"]
priority = 3
"#
    )
}
