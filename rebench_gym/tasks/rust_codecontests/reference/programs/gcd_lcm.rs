use std::io::{self, Read};
fn gcd(a: u64, b: u64) -> u64 { if b == 0 { a } else { gcd(b, a % b) } }
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let v: Vec<u64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    for i in 0..v[0] as usize {
        let (a, b) = (v[1 + 2 * i], v[2 + 2 * i]);
        let g = gcd(a, b);
        println!("{} {}", g, a / g * b);
    }
}
