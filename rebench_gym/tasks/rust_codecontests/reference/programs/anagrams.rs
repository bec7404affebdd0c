use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let w: Vec<&str> = s.split_whitespace().collect();
    let mut a: Vec<char> = w[0].chars().collect();
    let mut b: Vec<char> = w[1].chars().collect();
    a.sort();
    b.sort();
    println!("{}", if a == b { "YES" } else { "NO" });
}
