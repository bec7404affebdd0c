use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let v: Vec<i64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let n = v[0] as usize;
    let k = (v[1] as usize) % n;
    let a = &v[2..2 + n];
    let out: Vec<String> = a[n - k..].iter().chain(a[..n - k].iter()).map(|x| x.to_string()).collect();
    println!("{}", out.join(" "));
}
