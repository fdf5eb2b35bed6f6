  // log p(y | sigma_b, eps) with the slopes and beta = (a, mu_b) integrated out, over the K
  // groups with Sxx > 0. With delta = beta - beta*, d_j = eps^2 + sigma_b^2 Sxx_j, F_j = (Sx_j, Sxx_j):
  //   P = [[c2/eps^2, 0], [0, 0]] + S0^-1 + sum_j F_j F_j' / (Sxx_j d_j)
  //   g = S0^-1 (m0 - beta*) + sum_j F_j r_j / (Sxx_j d_j),  m = P^-1 g
  //   -2 log p = N log 2pi + (N - K) log eps^2 + sum_j log d_j + log det S0 + log det P
  //              + rss_min / eps^2 + Q(m),
  //   Q(m) = sum_j (r_j - F_j'm)^2 / (Sxx_j d_j) + c2 m1^2 / eps^2 + (m - (m0 - beta*))' S0^-1 (...),
  // the quadratic evaluated at its minimiser term by term (each term >= 0: no cancellation of
  // q0 against g'P^-1 g, which are both huge when eps -> 0 weights a few small-x points), and
  // beta | sigma_b, eps, y = beta* + N(m, P^-1). P's 2x2 Cholesky is written out; far out in
  // early warm-up P can round to non-finite or indefinite: the point is rejected.
  // (collapsed_fused.stan: the same functions in C++, hierlin_fused.hpp.)
  real hierlin_collapsed_ll(real sigma_b, real eps, int N, data vector sx, data vector sxx, data vector r,
                            data vector sx2_sxx, data vector sxr_sxx, data real c2, data real rss_min,
                            data real va, data real vm, data real g01, data real g02) {
    int K = rows(sx);
    real e = square(eps);
    vector[K] d = e + square(sigma_b) * sxx;
    vector[K] w = inv(d);
    real P11 = c2 / e + dot_product(w, sx2_sxx) + inv(va);
    real P12 = dot_product(w, sx);
    real P22 = dot_product(w, sxx) + inv(vm);
    real L11 = sqrt(P11);
    real L21 = P12 / L11;
    real L22sq = P22 - square(L21);
    if (!(L22sq > 0) || is_inf(L22sq) || !(P11 > 0) || is_inf(P11) || is_nan(P12)) {
      reject("hierlin collapsed: P is not finite and positive definite (sigma_b = ", sigma_b, ", eps = ", eps, ")");
    }
    real L22 = sqrt(L22sq);
    real z1 = (g01 + dot_product(w, sxr_sxx)) / L11;
    real z2 = (g02 + dot_product(w, r) - L21 * z1) / L22;
    real m2 = z2 / L22;
    real m1 = (z1 - L21 * m2) / L11;
    vector[K] res = r - m1 * sx - m2 * sxx;
    real Qm = dot_product(w, square(res) ./ sxx) + c2 * square(m1) / e
              + square(m1 - g01 * va) / va + square(m2 - g02 * vm) / vm;
    return -0.5 * (N * log(2 * pi()) + (N - K) * log(e) + sum(log(d)) + log(va) + log(vm)
                   + 2 * (log(L11) + log(L22)) + rss_min / e + Qm);
  }
  // [L11, L21, L22, m1, m2]: P = L L' and m = P^-1 g at (sigma_b, eps), for the exact draw of beta.
  vector hierlin_collapsed_beta(data real sigma_b, data real eps, data vector sx, data vector sxx,
                                data vector r, data vector sx2_sxx, data vector sxr_sxx, data real c2,
                                data real va, data real vm, data real g01, data real g02) {
    real e = square(eps);
    vector[rows(sx)] w = inv(e + square(sigma_b) * sxx);
    real L11 = sqrt(c2 / e + dot_product(w, sx2_sxx) + inv(va));
    real L21 = dot_product(w, sx) / L11;
    real L22 = sqrt(dot_product(w, sxx) + inv(vm) - square(L21));
    real z1 = (g01 + dot_product(w, sxr_sxx)) / L11;
    real z2 = (g02 + dot_product(w, r) - L21 * z1) / L22;
    real m2 = z2 / L22;
    return [L11, L21, L22, (z1 - L21 * m2) / L11, m2]';
  }
