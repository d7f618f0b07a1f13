owned
