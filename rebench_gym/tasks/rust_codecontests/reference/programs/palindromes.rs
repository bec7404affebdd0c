use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let mut out = Vec::new();
    for w in s.split_whitespace().skip(1) {
        let r: String = w.chars().rev().collect();
        out.push(if r == w { "YES" } else { "NO" });
    }
    println!("{}", out.join("\n"));
}
