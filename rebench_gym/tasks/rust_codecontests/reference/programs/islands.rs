use std::io::{self, Read};
fn main() {
    let mut s = String::new();
    io::stdin().read_to_string(&mut s).unwrap();
    let mut it = s.split_whitespace();
    let r: usize = it.next().unwrap().parse().unwrap();
    let c: usize = it.next().unwrap().parse().unwrap();
    let mut g: Vec<Vec<u8>> = (0..r).map(|_| it.next().unwrap().bytes().collect()).collect();
    let mut count = 0;
    for i in 0..r {
        for j in 0..c {
            if g[i][j] != b'#' { continue; }
            count += 1;
            g[i][j] = b'.';
            let mut st = vec![(i, j)];
            while let Some((y, x)) = st.pop() {
                let mut nb = Vec::new();
                if y > 0 { nb.push((y - 1, x)); }
                if y + 1 < r { nb.push((y + 1, x)); }
                if x > 0 { nb.push((y, x - 1)); }
                if x + 1 < c { nb.push((y, x + 1)); }
                for (ny, nx) in nb {
                    if g[ny][nx] == b'#' { g[ny][nx] = b'.'; st.push((ny, nx)); }
                }
            }
        }
    }
    println!("{}", count);
}
