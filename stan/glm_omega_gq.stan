  matrix[q_corr, q_corr] Omega = multiply_lower_tri_self_transpose(L_Omega);
