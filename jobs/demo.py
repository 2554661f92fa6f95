from nurture_lake.jobs.demo import main

if __name__ == "__main__":
    main()
