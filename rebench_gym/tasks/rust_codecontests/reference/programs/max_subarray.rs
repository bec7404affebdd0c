use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let v: Vec<i64> = s.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    let (mut best, mut cur) = (v[0], v[0]);
    for &x in &v[1..] {
        cur = if cur + x > x { cur + x } else { x };
        if cur > best { best = cur; }
    }
    println!("{}", best);
}
