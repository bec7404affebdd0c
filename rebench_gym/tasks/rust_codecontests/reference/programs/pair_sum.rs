use std::collections::HashSet;
use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let v: Vec<i64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let (n, t) = (v[0] as usize, v[1]);
    let mut seen = HashSet::new();
    let mut found = false;
    for &x in &v[2..2 + n] {
        if seen.contains(&(t - x)) { found = true; break; }
        seen.insert(x);
    }
    println!("{}", if found { "YES" } else { "NO" });
}
