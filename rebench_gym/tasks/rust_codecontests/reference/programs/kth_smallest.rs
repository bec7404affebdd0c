use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let v: Vec<i64> = s.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let (n, k) = (v[0] as usize, v[1] as usize);
    let mut a = v[2..2 + n].to_vec();
    a.sort();
    println!("{}", a[k - 1]);
}
