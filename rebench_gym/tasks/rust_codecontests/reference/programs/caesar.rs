use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let mut it = s.split_whitespace();
    let k: u32 = it.next().unwrap().parse().unwrap();
    let w = it.next().unwrap();
    let out: String = w.bytes().map(|b| (((b - b'a') as u32 + k) % 26) as u8 + b'a').map(|b| b as char).collect();
    println!("{}", out);
}
