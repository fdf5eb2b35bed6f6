  // Per-group blocks from the eigen-decomposition of Z_j'Z_j, padded to q rows
  // (hierlin_stan.model.sums): M_j = S W', e*_j = S^-1 W' Z'y - F_j beta*, F_j = S^-1 W' Z'X.
  array[J] matrix[q, q] M;
  array[J] vector[q] e_star;
  array[J] matrix[q, p] F;
  // RSSperp(beta) = rss_min + (beta - beta_star)' C2 (beta - beta_star), from the residual rows.
  matrix[p, p] C2;
  vector[p] beta_star;
  real<lower=0> rss_min;
