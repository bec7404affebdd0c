use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let v: Vec<i64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let n = v[0] as usize;
    let mut segs: Vec<(i64, i64)> = (0..n).map(|i| (v[1 + 2 * i], v[2 + 2 * i])).collect();
    segs.sort();
    let mut count = 0;
    let mut end = -1;
    for (lo, hi) in segs {
        if count == 0 || lo > end { count += 1; end = hi; } else if hi > end { end = hi; }
    }
    println!("{}", count);
}
