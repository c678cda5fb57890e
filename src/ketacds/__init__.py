"""ketacds: clinical decision support for ketamine and esketamine therapy."""
