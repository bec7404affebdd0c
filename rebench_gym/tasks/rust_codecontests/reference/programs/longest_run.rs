use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let v: Vec<i64> = s.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    let (mut best, mut cur) = (1, 1);
    for i in 1..v.len() {
        cur = if v[i] == v[i - 1] { cur + 1 } else { 1 };
        if cur > best { best = cur; }
    }
    println!("{}", best);
}
